package requester

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/framework/descriptor"
)

// yourNetwork is the network a requester was told to use: a directory
// (Config.Directory) and directory authorities (Config.Client.Trust). A
// zero field accepts what the descriptor names.
type yourNetwork struct {
	directory string
	trust     *directory.Trust
}

// check returns a *NetworkMismatchError or an *AuthoritiesMismatchError
// when d's network is not the requester's.
func (n yourNetwork) check(provider string, d *descriptor.Descriptor) error {
	if err := checkNetwork(provider, d, n.directory); err != nil {
		return err
	}
	return checkAuthorities(provider, d, n.trust)
}

// NetworkMismatchError is Connect's refusal of a descriptor whose network
// is not the one the requester was told to use (Config.Directory): what a
// descriptor substituted by whoever serves the provider's endpoint looks
// like, since its network section chooses the gateway that sees the
// requester's address and every mixnode.
type NetworkMismatchError struct {
	// Provider is the ProviderID; Want the directory the requester uses,
	// Got the one the descriptor names (or its network type, when it names
	// none).
	Provider, Want, Got string
}

// Error says loudly what happened and what to do if the change is real.
func (e *NetworkMismatchError) Error() string {
	return fmt.Sprintf("requester: THE PROVIDER'S NETWORK IS NOT YOURS: the descriptor of %s points at %s, and you use the directory %s. "+
		"Nothing was sent. A descriptor substituted on the way looks like this; if the provider moved networks, "+
		"check its key with its operator and use its directory.", e.Provider, e.Got, e.Want)
}

// checkNetwork returns a *NetworkMismatchError unless d's network is the
// peapod network whose directory is dir: the same URLs (a network of
// several authorities lists them separated by commas), in any order,
// compared as ProviderID compares URLs; an empty dir accepts any.
func checkNetwork(provider string, d *descriptor.Descriptor, dir string) error {
	if dir == "" {
		return nil
	}
	want, err := directoryIDs(dir)
	if err != nil {
		return fmt.Errorf("requester: Config.Directory %q is not an http(s) URL or a list of them", dir)
	}
	got := d.Network.Directory
	if d.Network.Type != descriptor.NetworkPeapod || got == "" {
		got = "a " + d.Network.Type + " network"
	} else if ids, err := directoryIDs(got); err == nil && slices.Equal(ids, want) {
		return nil
	}
	return &NetworkMismatchError{Provider: provider, Want: strings.Join(want, ","), Got: got}
}

// directoryIDs returns the ProviderIDs of the URLs of a directory,
// separated by commas, sorted and each once.
func directoryIDs(dir string) ([]string, error) {
	var ids []string
	for u := range strings.SplitSeq(dir, ",") {
		id, err := ProviderID(strings.TrimSpace(u))
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// ErrOtherAuthorities matches (errors.Is) the *AuthoritiesMismatchError of
// Connect: the provider's descriptor names other directory authorities, or
// a lower threshold, than the ones the requester trusts
// (Config.Client.Trust).
var ErrOtherAuthorities = errors.New("requester: the provider's network names other directory authorities than the ones trusted")

// AuthoritiesMismatchError is Connect's refusal of a descriptor whose
// network names other directory authorities than the requester trusts, or
// a lower threshold: with them, whoever substituted the descriptor would
// choose the topology, and so the requester's routes. It matches
// ErrOtherAuthorities.
type AuthoritiesMismatchError struct {
	// Provider is the ProviderID.
	Provider string
	// Want and Got are the trusted authorities' and the descriptor's base58
	// keys, sorted; WantK and GotK the signatures each requires.
	Want, Got   []string
	WantK, GotK int
}

// Error says loudly what happened and what to do if the change is real.
func (e *AuthoritiesMismatchError) Error() string {
	return fmt.Sprintf("requester: THE PROVIDER'S NETWORK IS NOT YOURS: the descriptor of %s names the directory authorities %s (%d of them must sign), "+
		"and you trust %s (%d of them must sign). Nothing was sent. A descriptor substituted on the way looks like this; "+
		"if the network changed its authorities, check them with its operator.",
		e.Provider, strings.Join(e.Got, ","), e.GotK, strings.Join(e.Want, ","), e.WantK)
}

// Is reports whether target is ErrOtherAuthorities.
func (e *AuthoritiesMismatchError) Is(target error) bool { return target == ErrOtherAuthorities }

// checkAuthorities returns an *AuthoritiesMismatchError when d's network
// names directory authorities that are not exactly trust's (in any order),
// or a threshold below trust's. A nil trust accepts any; a descriptor
// naming no authorities passes, as the requester verifies the topology
// with trust itself.
func checkAuthorities(provider string, d *descriptor.Descriptor, trust *directory.Trust) error {
	if trust == nil {
		return nil
	}
	published, err := d.Network.Trust()
	if err != nil {
		return fmt.Errorf("requester: %s: %w", provider, err)
	}
	if published == nil {
		return nil
	}
	want, got := sortedKeys(*trust), sortedKeys(*published)
	if slices.Equal(want, got) && published.K() >= trust.K() {
		return nil
	}
	return &AuthoritiesMismatchError{Provider: provider, Want: want, Got: got, WantK: trust.K(), GotK: published.K()}
}

// sortedKeys returns t's base58 keys, sorted.
func sortedKeys(t directory.Trust) []string {
	keys := t.Keys()
	slices.Sort(keys)
	return keys
}
