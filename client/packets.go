package client

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/peapod-mixnet/peapod/client/internal/fragment"
	"github.com/peapod-mixnet/peapod/internal/x25519"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// The payload of every data packet (regular size):
//
//	ack first hop [19] ‖ ack packet [386] ‖ key field [32] ‖ AES-128-GCM(fragment) [1595 + 16]
//
// The recipient's gateway strips the first two parts and sends the ack on.
// For a message sent to an address, the key field is an ephemeral X25519
// public key and the fragment key is HKDF(X25519(ephemeral, recipient's
// encryption key)); for a reply on a SURB the key field and the sealing come
// from sphinx.SealReply with the SURB's reply key. Either way the gateway
// sees only ciphertext.
//
// An ack packet's payload (21 bytes) is IV [16] ‖ AES-128-CTR(ack key, IV,
// fragment id [5]), Nym's form: only the sender can read or forge it.
const (
	packetSize     = sphinx.RegularPacket
	ackHopSize     = sphinx.CompactNodeAddressSize
	keyFieldSize   = 32
	e2eTagSize     = 16
	ackIVSize      = 16
	ackPayloadSize = ackIVSize + fragment.IDLen

	// ackPartSize is what the gateway strips off a data payload.
	ackPartSize = ackHopSize + 386

	// FragmentCapacity is how many bytes of a fragment (header included)
	// one regular packet carries.
	FragmentCapacity = 2048 - ackPartSize - keyFieldSize - e2eTagSize

	// SURBHops is the length of every route: three mixnodes and a gateway.
	SURBHops = 4
)

func init() {
	if sphinx.AckPacket.Len() != 386 || packetSize.PlaintextLen() != ackPartSize+keyFieldSize+FragmentCapacity+e2eTagSize {
		panic("client: packet layout does not add up")
	}
	if sphinx.AckPacket.PlaintextLen() != ackPayloadSize {
		panic("client: ack layout does not add up")
	}
	if sphinx.ReplyOverhead != keyFieldSize+e2eTagSize {
		panic("client: reply sealing overhead differs from the e2e overhead")
	}
}

var (
	e2eSalt = []byte("peapod-client-v1 e2e")
	e2eInfo = "peapod-client-v1 fragment key"

	errDecrypt = errors.New("client: fragment did not decrypt")
)

func gcm(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("client: AES key of wrong size") // unreachable: keys are fixed-size
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("client: GCM setup failed") // unreachable
	}
	return aead
}

// fragmentKey derives the AES-128-GCM key of one packet from its X25519
// shared secret and the public keys on both sides.
func fragmentKey(shared, ephPub, recipient []byte) ([]byte, error) {
	salt := make([]byte, 0, len(e2eSalt)+64)
	salt = append(append(append(salt, e2eSalt...), ephPub...), recipient...)
	return hkdf.Key(sha256.New, shared, salt, e2eInfo, 16)
}

// sealFragment appends ephemeral public key ‖ AES-GCM(fragment) for a
// recipient's X25519 encryption key.
func sealFragment(dst []byte, rand io.Reader, recipient *[32]byte, frag []byte) ([]byte, error) {
	var seed, ephPub, shared [32]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return dst, fmt.Errorf("client: reading randomness: %w", err)
	}
	scalar := x25519.ClampedScalar(&seed)
	x25519.ScalarBaseMult(&ephPub, scalar)
	x25519.Clamp(&seed)
	x25519.ScalarMult(&shared, &seed, recipient)
	clear(seed[:])
	if x25519.IsZero(&shared) {
		return dst, errors.New("client: recipient encryption key has small order")
	}
	key, err := fragmentKey(shared[:], ephPub[:], recipient[:])
	if err != nil {
		return dst, err
	}
	dst = append(dst, ephPub[:]...)
	var nonce [12]byte
	return gcm(key).Seal(dst, nonce[:], frag, nil), nil
}

// openFragment reverses sealFragment with the recipient's private key
// (clamped) and public key.
func openFragment(priv, pub *[32]byte, sealed []byte) ([]byte, error) {
	if len(sealed) < keyFieldSize+e2eTagSize {
		return nil, errDecrypt
	}
	ephPub := (*[32]byte)(sealed[:keyFieldSize])
	if !x25519.IsCanonical(ephPub) {
		return nil, errDecrypt
	}
	var shared [32]byte
	x25519.ScalarMult(&shared, priv, ephPub)
	if x25519.IsZero(&shared) {
		return nil, errDecrypt
	}
	key, err := fragmentKey(shared[:], ephPub[:], pub[:])
	if err != nil {
		return nil, err
	}
	var nonce [12]byte
	out, err := gcm(key).Open(nil, nonce[:], sealed[keyFieldSize:], nil)
	if err != nil {
		return nil, errDecrypt
	}
	return out, nil
}

// ackPayload is the 21-byte content of the SURB-ack for fragment id.
func ackPayload(rand io.Reader, ackKey []byte, id fragment.ID) ([]byte, error) {
	out := make([]byte, ackIVSize, ackPayloadSize)
	if _, err := io.ReadFull(rand, out); err != nil {
		return nil, fmt.Errorf("client: reading randomness: %w", err)
	}
	out = id.AppendBinary(out)
	block, err := aes.NewCipher(ackKey)
	if err != nil {
		return nil, fmt.Errorf("client: ack key: %w", err)
	}
	cipher.NewCTR(block, out[:ackIVSize]).XORKeyStream(out[ackIVSize:], out[ackIVSize:])
	return out, nil
}

// parseAck recovers the fragment id from an ack payload.
func parseAck(ackKey, payload []byte) (fragment.ID, error) {
	if len(payload) != ackPayloadSize {
		return fragment.ID{}, fmt.Errorf("client: ack of %d bytes, want %d", len(payload), ackPayloadSize)
	}
	block, err := aes.NewCipher(ackKey)
	if err != nil {
		return fragment.ID{}, fmt.Errorf("client: ack key: %w", err)
	}
	var id [fragment.IDLen]byte
	cipher.NewCTR(block, payload[:ackIVSize]).XORKeyStream(id[:], payload[ackIVSize:])
	return fragment.ParseID(id[:])
}

// packetPlan is everything needed to build one data packet.
type packetPlan struct {
	route   []sphinx.Hop // to the recipient's gateway; nil when surb is set
	dest    sphinx.Destination
	surb    *sphinx.SURB // reply on a SURB instead of a route
	encKey  *[32]byte    // recipient's encryption key (route only)
	ackPath []sphinx.Hop // the ack's route back to our own gateway
	self    sphinx.Destination
	ackKey  []byte
	id      fragment.ID
	frag    []byte // the fragment's wire form, FragmentCapacity bytes
}

// buildPacket makes the Sphinx packet for p and returns it with its first hop.
func buildPacket(rand io.Reader, p *packetPlan) (sphinx.NodeAddress, []byte, error) {
	ackContent, err := ackPayload(rand, p.ackKey, p.id)
	if err != nil {
		return sphinx.NodeAddress{}, nil, err
	}
	ackPkt, err := sphinx.NewPacket(rand, sphinx.AckPacket, p.ackPath, p.self, sphinx.SURBID{}, ackContent)
	if err != nil {
		return sphinx.NodeAddress{}, nil, fmt.Errorf("client: building the ack: %w", err)
	}
	payload := make([]byte, 0, packetSize.PlaintextLen())
	payload = append(payload, p.ackPath[0].Address[:ackHopSize]...)
	payload = append(payload, ackPkt...)
	if p.surb != nil {
		payload = sphinx.SealReply(payload, &p.surb.Key, p.frag)
		pkt, err := p.surb.NewPacket(packetSize, payload)
		if err != nil {
			return sphinx.NodeAddress{}, nil, fmt.Errorf("client: using a SURB: %w", err)
		}
		return p.surb.FirstHop, pkt, nil
	}
	if payload, err = sealFragment(payload, rand, p.encKey, p.frag); err != nil {
		return sphinx.NodeAddress{}, nil, err
	}
	pkt, err := sphinx.NewPacket(rand, packetSize, p.route, p.dest, sphinx.SURBID{}, payload)
	if err != nil {
		return sphinx.NodeAddress{}, nil, fmt.Errorf("client: building the packet: %w", err)
	}
	return p.route[0].Address, pkt, nil
}
