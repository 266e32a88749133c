package sphinx

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"golang.org/x/crypto/blake2b"
)

// The allocation-free primitives must agree with the standard library.

func TestHMACMatchesStdlib(t *testing.T) {
	s := getScratch()
	defer putScratch(s)
	for _, keyLen := range []int{0, 16, 32, 64} {
		for _, msgLen := range []int{0, 1, 63, 64, 65, 300, 1000} {
			key := make([]byte, keyLen)
			msg := make([]byte, msgLen)
			rand.Read(key)
			rand.Read(msg)
			m := hmac.New(sha256.New, key)
			m.Write(msg)
			want := m.Sum(nil)
			s.hmacInit(key)
			s.hmacWrite(msg)
			var got [32]byte
			s.hmacSum(&got)
			if !bytes.Equal(got[:], want) {
				t.Fatalf("HMAC key %d msg %d differs", keyLen, msgLen)
			}
		}
	}
}

func TestHKDFMatchesStdlib(t *testing.T) {
	s := getScratch()
	defer putScratch(s)
	for _, n := range []int{16, 32, 33, lionessKeySize, hopKeysSize} {
		ikm := make([]byte, 32)
		rand.Read(ikm)
		want, err := hkdf.Key(sha256.New, ikm, hopKeysSalt, string(hopKeysInfo), n)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, n)
		s.hkdf(got, hopKeysSalt, ikm, hopKeysInfo)
		if !bytes.Equal(got, want) {
			t.Fatalf("HKDF of %d bytes differs", n)
		}
	}
}

func TestAESCTRMatchesStdlib(t *testing.T) {
	s := getScratch()
	defer putScratch(s)
	key := make([]byte, 16)
	rand.Read(key)
	for _, n := range []int{1, 16, 17, 360} {
		buf := make([]byte, n)
		rand.Read(buf)
		want := make([]byte, n)
		block, _ := aes.NewCipher(key)
		cipher.NewCTR(block, make([]byte, 16)).XORKeyStream(want, buf)
		s.xorAESCTR(key, buf)
		if !bytes.Equal(buf, want) {
			t.Fatalf("AES-CTR of %d bytes differs", n)
		}
	}
}

func TestKeyedBlakeMatchesStdlib(t *testing.T) {
	s := getScratch()
	defer putScratch(s)
	for _, n := range []int{1, 127, 128, 129, 256, 2033} {
		var key [blakeKeySize]byte
		rand.Read(key[:])
		msg := make([]byte, n)
		rand.Read(msg)
		ref, _ := blake2b.New256(key[:])
		ref.Write(msg)
		want := ref.Sum(nil)
		h := s.keyedBlake256(&key)
		if h != s.blake {
			t.Fatal("keyed BLAKE2b fell back to an allocating digest: the state encoding changed")
		}
		h.Write(msg)
		if got := h.Sum(nil); !bytes.Equal(got, want) {
			t.Fatalf("keyed BLAKE2b of %d bytes differs", n)
		}
	}
}

func TestLionessRoundTripAndWideBlock(t *testing.T) {
	s := getScratch()
	defer putScratch(s)
	var key [lionessKeySize]byte
	rand.Read(key[:])
	for _, n := range []int{lionessMinBlock, 38, 2065} {
		plain := make([]byte, n)
		rand.Read(plain)
		buf := bytes.Clone(plain)
		s.lionessEncrypt(&key, buf)
		if bytes.Equal(buf, plain) {
			t.Fatal("encryption left the block unchanged")
		}
		// A one-bit change of the ciphertext garbles the whole plaintext.
		flipped := bytes.Clone(buf)
		flipped[n-1] ^= 1
		s.lionessDecrypt(&key, buf)
		if !bytes.Equal(buf, plain) {
			t.Fatalf("%d-byte block did not round-trip", n)
		}
		s.lionessDecrypt(&key, flipped)
		if bytes.Equal(flipped[:lionessLSize], plain[:lionessLSize]) {
			t.Fatal("a flipped ciphertext bit left the left half intact")
		}
	}
}
