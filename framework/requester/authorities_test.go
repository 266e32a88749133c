package requester

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/framework/descriptor"
	"github.com/peapod-mixnet/peapod/internal/testvectors"
)

const authoritiesVectorsFile = "testdata/authorities.json"

// authoritiesVector is one case of the rule a requester given directory
// authorities applies to a descriptor's network (checkAuthorities), for
// the SDKs to apply the same: Trusted and TrustedThreshold are what the
// caller trusts (none: any network passes), Published and
// PublishedThreshold what the descriptor names; Refused says whether the
// descriptor is refused. A threshold of 0 is a majority.
type authoritiesVector struct {
	Name               string   `json:"name"`
	Trusted            []string `json:"trusted"`
	TrustedThreshold   int      `json:"trusted_threshold"`
	Published          []string `json:"published"`
	PublishedThreshold int      `json:"published_threshold"`
	Refused            bool     `json:"refused"`
}

// TestAuthoritiesVectors checks checkAuthorities against its cases and
// that testdata/authorities.json holds them (regenerate with -update).
func TestAuthoritiesVectors(t *testing.T) {
	var k []string
	for _, b := range []byte{0x33, 0x44, 0x55, 0x66} {
		key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
		k = append(k, address.EncodeKey(key.Public().(ed25519.PublicKey)))
	}
	three := k[:3]
	vectors := []authoritiesVector{
		{Name: "the same authorities and threshold", Trusted: three, Published: three},
		{Name: "the same authorities in another order", Trusted: three, Published: []string{k[2], k[0], k[1]}},
		{Name: "a higher threshold", Trusted: three, TrustedThreshold: 2, Published: three, PublishedThreshold: 3},
		{Name: "a lower threshold", Trusted: three, TrustedThreshold: 3, Published: three, PublishedThreshold: 2, Refused: true},
		{Name: "the majority against a threshold of all", Trusted: three, TrustedThreshold: 3, Published: three, Refused: true},
		{Name: "one authority replaced", Trusted: three, Published: []string{k[0], k[1], k[3]}, Refused: true},
		{Name: "one authority more", Trusted: three, Published: k, Refused: true},
		{Name: "one authority fewer", Trusted: three, Published: k[:2], Refused: true},
		{Name: "the descriptor names none", Trusted: three},
		{Name: "nothing trusted", Published: k},
	}
	testvectors.Golden(t, authoritiesVectorsFile, struct {
		Comment string              `json:"comment"`
		Vectors []authoritiesVector `json:"vectors"`
	}{
		Comment: "Whether a requester that trusts some directory authorities refuses a provider descriptor whose network names " +
			"the published ones (docs/protocol.md 3b): the same keys in any order and a threshold at least the trusted one pass. " +
			"Keys are ed25519 from the seeds 33..., 44..., 55..., 66... A threshold of 0 is a majority. " +
			"Regenerate with go test ./framework/requester -run TestAuthoritiesVectors -update.",
		Vectors: vectors,
	})
	for _, v := range vectors {
		var trust *directory.Trust
		if len(v.Trusted) > 0 {
			tr, err := directory.ParseTrust(v.Trusted, v.TrustedThreshold)
			if err != nil {
				t.Fatalf("%s: %v", v.Name, err)
			}
			trust = &tr
		}
		d := &descriptor.Descriptor{Info: descriptor.Info{Network: descriptor.Network{
			Type: descriptor.NetworkPeapod, Authorities: v.Published, Threshold: v.PublishedThreshold}}}
		err := checkAuthorities("provider", d, trust)
		if refused := errors.Is(err, ErrOtherAuthorities); refused != v.Refused || (err != nil && !refused) {
			t.Errorf("%s: %v, want refused %v", v.Name, err, v.Refused)
		}
	}
}
