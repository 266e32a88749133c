package sphinx

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"testing"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/curve25519"
)

// detReader is a deterministic randomness source for vectors and
// differential tests: the ChaCha20 keystream of SHA-256(label).
func detReader(label string) io.Reader {
	key := sha256.Sum256([]byte(label))
	c, err := chacha20.NewUnauthenticatedCipher(key[:], make([]byte, chacha20.NonceSize))
	if err != nil {
		panic(err)
	}
	return &streamReader{c}
}

type streamReader struct{ c *chacha20.Cipher }

func (r *streamReader) Read(p []byte) (int, error) {
	clear(p)
	r.c.XORKeyStream(p, p)
	return len(p), nil
}

// referenceHeader builds a header the slow, obvious way of the Sphinx paper:
// the group element is blinded point by point (a chain of X25519 calls for
// every hop), keys come from crypto/hkdf, the keystream from crypto/cipher's
// CTR, MACs from crypto/hmac, and the routing information is assembled with
// plain slices. It reads randomness in the same order as NewPacket: the
// 32-byte secret, then the final slot's padding.
func referenceHeader(t testing.TB, rand io.Reader, route []Hop, dest Destination, id SURBID) []byte {
	t.Helper()
	secret := make([]byte, 32)
	io.ReadFull(rand, secret)
	n := len(route)

	alpha, err := curve25519.X25519(secret, curve25519.Basepoint)
	if err != nil {
		t.Fatal(err)
	}
	type keys struct{ stream, mac, blind []byte }
	ks := make([]keys, n)
	var blinds [][]byte
	for i, hop := range route {
		// shared_i = b_{i-1}·…·b_0·x·P_i, one exponentiation at a time.
		shared, err := curve25519.X25519(secret, hop.PublicKey[:])
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range blinds {
			if shared, err = curve25519.X25519(b, shared); err != nil {
				t.Fatal(err)
			}
		}
		okm, err := hkdf.Key(sha256.New, shared, []byte("peapod-sphinx-v1 hop key salt"), "peapod-sphinx-v1 hop keys", 288)
		if err != nil {
			t.Fatal(err)
		}
		ks[i] = keys{stream: okm[0:16], mac: okm[16:32], blind: okm[224:256]}
		blinds = append(blinds, ks[i].blind)
	}
	stream := func(i int) []byte {
		block, _ := aes.NewCipher(ks[i].stream)
		out := make([]byte, 360)
		cipher.NewCTR(block, make([]byte, 16)).XORKeyStream(out, out)
		return out
	}
	xor := func(a, b []byte) []byte {
		out := make([]byte, len(a))
		for i := range a {
			out[i] = a[i] ^ b[i]
		}
		return out
	}
	mac := func(i int, beta []byte) []byte {
		m := hmac.New(sha256.New, ks[i].mac)
		m.Write(beta)
		return m.Sum(nil)[:16]
	}
	version := []byte{0, byte(Version >> 8), byte(Version & 0xff)}

	// Filler: what each hop shifts in, as seen through the later hops.
	var filler []byte
	for i := 0; i < n-1; i++ {
		filler = append(filler, make([]byte, 60)...)
		s := stream(i)
		filler = xor(filler, s[360-len(filler):])
	}
	final := append([]byte{2}, version...)
	final = append(final, dest[:]...)
	final = append(final, id[:]...)
	pad := make([]byte, 300-len(filler)-len(final))
	io.ReadFull(rand, pad)
	plain := append(final, pad...)
	beta := append(xor(plain, stream(n - 1)[:len(plain)]), filler...)
	gamma := mac(n-1, beta)
	for i := n - 2; i >= 0; i-- {
		slot := append([]byte{1}, version...)
		slot = append(slot, route[i+1].Address[:]...)
		slot = binary.BigEndian.AppendUint64(slot, uint64(route[i].Delay))
		slot = append(slot, gamma...)
		beta = xor(append(slot, beta[:240]...), stream(i)[:300])
		gamma = mac(i, beta)
	}
	h := append(alpha, gamma...)
	return append(h, beta...)
}

func TestHeaderMatchesReference(t *testing.T) {
	for hops := 1; hops <= MaxHops; hops++ {
		for trial := range 4 {
			label := fmt.Sprintf("reference %d %d", hops, trial)
			nodes := newTestRoute(t, hops)
			route := hopsOf(nodes)
			dest := Destination{byte(hops), byte(trial)}
			id := SURBID{0xEE, byte(trial)}
			pkt, err := NewPacket(detReader(label), RegularPacket, route, dest, id, []byte("m"))
			if err != nil {
				t.Fatal(err)
			}
			want := referenceHeader(t, detReader(label), route, dest, id)
			if string(pkt[:HeaderSize]) != string(want) {
				t.Fatalf("%d hops, trial %d: header differs from the reference", hops, trial)
			}
			surb, err := NewSURB(detReader(label), route, dest, id)
			if err != nil {
				t.Fatal(err)
			}
			if string(surb.Header[:]) != string(want) {
				t.Fatalf("%d hops, trial %d: SURB header differs from the reference", hops, trial)
			}
		}
	}
}
