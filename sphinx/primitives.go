package sphinx

import (
	"crypto/aes"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/chacha20"
)

// This file holds the symmetric primitives, written so that processing a
// packet does not allocate: every hash state lives in a pooled scratch and is
// reset, never recreated. HMAC and HKDF are the textbook constructions (RFC
// 2104, RFC 5869) over crypto/sha256; tests check them against crypto/hmac and
// crypto/hkdf.

// scratch is per-call working memory, taken from a pool.
type scratch struct {
	inner, outer hash.Hash // SHA-256 states for HMAC
	pad          [sha256.BlockSize]byte
	innerSum     [sha256.Size]byte
	prk          [sha256.Size]byte
	block        [sha256.Size]byte
	counter      [1]byte

	blake      hash.Hash // keyed BLAKE2b-256, re-keyed through its state encoding
	blakeState [blakeStateSize]byte
	blakeSum   [blake2b.Size256]byte

	shared     [KeySize]byte
	keys       hopKeys
	payloadKey [lionessKeySize]byte
	stream     [RoutingInfoSize + SlotSize]byte
	mac        [sha256.Size]byte
	chachaKey  [chacha20.KeySize]byte
	ctrBlock   [aes.BlockSize]byte
	ctrIn      [aes.BlockSize]byte
}

var scratchPool = sync.Pool{New: func() any {
	s := &scratch{inner: sha256.New(), outer: sha256.New()}
	s.blake, _ = blake2b.New256(nil)
	return s
}}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(s *scratch) {
	// Wipe derived key material before the scratch goes back to the pool.
	clear(s.pad[:])
	clear(s.innerSum[:])
	clear(s.prk[:])
	clear(s.block[:])
	clear(s.blakeState[:])
	clear(s.shared[:])
	clear(s.keys.raw[:])
	clear(s.payloadKey[:])
	clear(s.stream[:])
	clear(s.chachaKey[:])
	scratchPool.Put(s)
}

// hmacInit starts an HMAC-SHA256 with key (at most one block long).
func (s *scratch) hmacInit(key []byte) {
	clear(s.pad[:])
	copy(s.pad[:], key)
	for i := range s.pad {
		s.pad[i] ^= 0x36
	}
	s.inner.Reset()
	s.inner.Write(s.pad[:])
	for i := range s.pad {
		s.pad[i] ^= 0x36 ^ 0x5c
	}
	s.outer.Reset()
	s.outer.Write(s.pad[:])
}

func (s *scratch) hmacWrite(p []byte) { s.inner.Write(p) }

// hmacSum finishes the HMAC into out.
func (s *scratch) hmacSum(out *[sha256.Size]byte) {
	s.inner.Sum(s.innerSum[:0])
	s.outer.Write(s.innerSum[:])
	s.outer.Sum(out[:0])
}

// hkdf fills out with HKDF-SHA256(salt, ikm, info).
func (s *scratch) hkdf(out, salt, ikm, info []byte) {
	s.hmacInit(salt)
	s.hmacWrite(ikm)
	s.hmacSum(&s.prk)
	for off, i := 0, byte(1); off < len(out); off, i = off+sha256.Size, i+1 {
		s.hmacInit(s.prk[:])
		if off > 0 {
			s.hmacWrite(s.block[:])
		}
		s.hmacWrite(info)
		s.counter[0] = i
		s.hmacWrite(s.counter[:])
		s.hmacSum(&s.block)
		copy(out[off:], s.block[:])
	}
}

// xorAESCTR XORs buf with the AES-128-CTR keystream of key and a zero IV.
// crypto/cipher's CTR allocates a buffer per stream; this loop only allocates
// the AES key schedule, which crypto/aes offers no way to avoid.
func (s *scratch) xorAESCTR(key []byte, buf []byte) {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("sphinx: AES key of wrong size") // unreachable: keys are fixed-size
	}
	clear(s.ctrIn[:])
	for off := 0; off < len(buf); off += aes.BlockSize {
		block.Encrypt(s.ctrBlock[:], s.ctrIn[:])
		end := min(off+aes.BlockSize, len(buf))
		for i := off; i < end; i++ {
			buf[i] ^= s.ctrBlock[i-off]
		}
		binary.BigEndian.PutUint64(s.ctrIn[8:], binary.BigEndian.Uint64(s.ctrIn[8:])+1)
	}
}

// Keyed BLAKE2b through the digest's state encoding. golang.org/x/crypto's
// blake2b can only be keyed when it is created, which would allocate once per
// Lioness round. Its digest implements encoding.BinaryUnmarshaler, and the
// state of a keyed BLAKE2b before any message byte is simple to write down:
// the parameter block folded into the IV and the key as the pending first
// block. Loading that state re-keys the same digest. If the encoding ever
// changes, UnmarshalBinary refuses it and we fall back to blake2b.New256.
const (
	blakeStateMagic = "b2b"
	blakeStateSize  = len(blakeStateMagic) + 8*8 + 2*8 + 1 + blake2b.BlockSize + 1
	blakeKeySize    = 64
)

var blakeIV = [8]uint64{
	0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
	0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179,
}

// keyedBlake256 returns BLAKE2b-256 keyed with key, ready for writing.
func (s *scratch) keyedBlake256(key *[blakeKeySize]byte) hash.Hash {
	b := s.blakeState[:0]
	b = append(b, blakeStateMagic...)
	for i, v := range blakeIV {
		if i == 0 {
			v ^= blake2b.Size256 | blakeKeySize<<8 | 1<<16 | 1<<24
		}
		b = binary.BigEndian.AppendUint64(b, v)
	}
	b = binary.BigEndian.AppendUint64(b, 0) // counter
	b = binary.BigEndian.AppendUint64(b, 0)
	b = append(b, blake2b.Size256)
	b = append(b, key[:]...)
	b = append(b, make([]byte, blake2b.BlockSize-blakeKeySize)...)
	b = append(b, blake2b.BlockSize) // the key block is pending
	if err := s.blake.(interface{ UnmarshalBinary([]byte) error }).UnmarshalBinary(b); err != nil {
		h, _ := blake2b.New256(key[:])
		return h
	}
	return s.blake
}
