package sphinx

import (
	"golang.org/x/crypto/chacha20"
)

// Lioness (Anderson and Biham) is the wide-block cipher that protects the
// payload: changing any bit of a ciphertext garbles the whole plaintext, which
// is what lets the last hop detect tampering anywhere in the payload from its
// zero prefix. It is built, as in Nym, from ChaCha20 (stream rounds) and keyed
// BLAKE2b-256 (hash rounds). The block is split into L (32 bytes, one ChaCha20
// key) and R (the rest, at least one byte).
//
// Key layout, 192 bytes: K1 stream[32] ‖ K2 hash[64] ‖ K3 stream[32] ‖ K4 hash[64].
//
//	encrypt: R ^= S(L^K1); L ^= H(K2,R); R ^= S(L^K3); L ^= H(K4,R)
//	decrypt: the same rounds in reverse order.
//
// S is the ChaCha20 keystream with an all-zero nonce; each stream key is used
// once, because L changes with every packet.
const (
	lionessKeySize = 2*chacha20.KeySize + 2*blakeKeySize
	lionessLSize   = chacha20.KeySize
	// lionessMinBlock is the smallest block Lioness accepts.
	lionessMinBlock = lionessLSize + 1

	lionessK1 = 0
	lionessK2 = lionessK1 + chacha20.KeySize
	lionessK3 = lionessK2 + blakeKeySize
	lionessK4 = lionessK3 + chacha20.KeySize
)

var zeroNonce [chacha20.NonceSize]byte

func (s *scratch) lionessStreamRound(block []byte, k *[chacha20.KeySize]byte) {
	for i := range s.chachaKey {
		s.chachaKey[i] = block[i] ^ k[i]
	}
	c, err := chacha20.NewUnauthenticatedCipher(s.chachaKey[:], zeroNonce[:])
	if err != nil {
		panic("sphinx: chacha20 key of wrong size") // unreachable
	}
	c.XORKeyStream(block[lionessLSize:], block[lionessLSize:])
}

func (s *scratch) lionessHashRound(block []byte, k *[blakeKeySize]byte) {
	h := s.keyedBlake256(k)
	h.Write(block[lionessLSize:])
	h.Sum(s.blakeSum[:0])
	for i := range lionessLSize {
		block[i] ^= s.blakeSum[i]
	}
}

func lionessKeys(key *[lionessKeySize]byte) (k1 *[chacha20.KeySize]byte, k2 *[blakeKeySize]byte, k3 *[chacha20.KeySize]byte, k4 *[blakeKeySize]byte) {
	return (*[chacha20.KeySize]byte)(key[lionessK1:]), (*[blakeKeySize]byte)(key[lionessK2:]),
		(*[chacha20.KeySize]byte)(key[lionessK3:]), (*[blakeKeySize]byte)(key[lionessK4:])
}

// lionessEncrypt encrypts block in place. len(block) >= lionessMinBlock.
func (s *scratch) lionessEncrypt(key *[lionessKeySize]byte, block []byte) {
	k1, k2, k3, k4 := lionessKeys(key)
	s.lionessStreamRound(block, k1)
	s.lionessHashRound(block, k2)
	s.lionessStreamRound(block, k3)
	s.lionessHashRound(block, k4)
}

// lionessDecrypt decrypts block in place. len(block) >= lionessMinBlock.
func (s *scratch) lionessDecrypt(key *[lionessKeySize]byte, block []byte) {
	k1, k2, k3, k4 := lionessKeys(key)
	s.lionessHashRound(block, k4)
	s.lionessStreamRound(block, k3)
	s.lionessHashRound(block, k2)
	s.lionessStreamRound(block, k1)
}
