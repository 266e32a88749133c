package sphinx

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/subtle"
)

// A reply's content is sealed with the SURB's ReplyKey, because the last hop
// of the SURB's route (the creator's gateway) peels the last layer and sees
// the payload:
//
//	sealed = digest(key)[32] ‖ AES-128-GCM(key, zero nonce, content)
//
// The digest lets the creator find which of its keys to use without trying
// them all; the creator opens the reply with OpenReply. Each ReplyKey seals
// one reply, so the fixed nonce is never reused under a key (a SURB used
// twice is refused at its first hop).
const (
	ReplyDigestSize = sha256.Size
	replyTagSize    = 16
	// ReplyOverhead is what SealReply adds to the content.
	ReplyOverhead = ReplyDigestSize + replyTagSize
)

var replyDigestPrefix = []byte("peapod-sphinx-v1 reply key digest")

// Digest identifies the key without revealing it.
func (k *ReplyKey) Digest() [ReplyDigestSize]byte {
	h := sha256.New()
	h.Write(replyDigestPrefix)
	h.Write(k[:])
	var d [ReplyDigestSize]byte
	h.Sum(d[:0])
	return d
}

func (k *ReplyKey) aead() cipher.AEAD {
	block, err := aes.NewCipher(k[:])
	if err != nil {
		panic("sphinx: AES key of wrong size") // unreachable
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("sphinx: GCM setup failed") // unreachable
	}
	return aead
}

// SealReply appends the sealed form of content to dst.
func SealReply(dst []byte, key *ReplyKey, content []byte) []byte {
	d := key.Digest()
	dst = append(dst, d[:]...)
	var nonce [12]byte
	return key.aead().Seal(dst, nonce[:], content, d[:])
}

// ReplyDigest returns the key digest that starts a sealed reply.
func ReplyDigest(sealed []byte) ([ReplyDigestSize]byte, bool) {
	var d [ReplyDigestSize]byte
	if len(sealed) < ReplyOverhead {
		return d, false
	}
	copy(d[:], sealed)
	return d, true
}

// OpenReply checks and decrypts a sealed reply, appending the content to dst.
// Any failure is ErrReply, with nothing appended.
func OpenReply(dst []byte, key *ReplyKey, sealed []byte) ([]byte, error) {
	if len(sealed) < ReplyOverhead {
		return dst, ErrReply
	}
	d := key.Digest()
	if subtle.ConstantTimeCompare(d[:], sealed[:ReplyDigestSize]) != 1 {
		return dst, ErrReply
	}
	var nonce [12]byte
	out, err := key.aead().Open(dst, nonce[:], sealed[ReplyDigestSize:], d[:])
	if err != nil {
		return dst, ErrReply
	}
	return out, nil
}
