package requester

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"strings"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/framework/descriptor"
)

// How a Discovery's key was checked, the value of Discovery.Trust.
const (
	// TrustPinned: the caller pinned the key.
	TrustPinned = "pinned"
	// TrustRemembered: the key is the one remembered from an earlier use.
	TrustRemembered = "remembered"
	// TrustFirstUse: nothing was known; the key is now remembered.
	TrustFirstUse = "first_use"
	// TrustNone: nothing was pinned and nothing is remembered.
	TrustNone = "none"
)

// Discovery is a provider found at its HTTP endpoint: its verified
// descriptor and how far it is trusted.
type Discovery struct {
	// Descriptor is the provider's verified descriptor.
	Descriptor *descriptor.Descriptor
	// ProviderID is the provider URL as it is remembered (see ProviderID).
	ProviderID string
	// Trust is TrustPinned, TrustRemembered, TrustFirstUse or TrustNone.
	Trust string
	// Warnings are what a user should be told: the key on first use,
	// nothing pinned over plain http, a descriptor that is not
	// self-certifying and not pinned.
	Warnings []string
}

// Discover fetches and verifies the provider's descriptor (see Fetch). With
// pin it refuses any other key. Otherwise, with known, it checks the key
// against the one remembered for the provider and refuses another with a
// *KeyChangedError, or remembers it when the provider is new. hc and known
// may be nil.
//
// The descriptor's network section (the directory a requester joins, and
// the keys of its directory authorities) is trusted as far as the
// descriptor is, unless the caller names its own network (Config.Directory,
// through Connect) or its own authorities (Config.Client.Trust: Connect
// refuses a network whose authorities contradict them,
// ErrOtherAuthorities); a warning says when the network names no
// authorities, so that whoever answers on its directory URL chooses the
// routes.
func Discover(ctx context.Context, hc *http.Client, providerURL string, pin ed25519.PublicKey, known *KnownProviders) (*Discovery, error) {
	return discover(ctx, hc, providerURL, pin, known, yourNetwork{})
}

// discover is Discover that also refuses a descriptor naming another
// network than mine (a *NetworkMismatchError or an
// *AuthoritiesMismatchError), before a first-use key is remembered.
func discover(ctx context.Context, hc *http.Client, providerURL string, pin ed25519.PublicKey, known *KnownProviders, mine yourNetwork) (*Discovery, error) {
	id, err := ProviderID(providerURL)
	if err != nil {
		return nil, err
	}
	disc := &Discovery{ProviderID: id, Trust: TrustNone}
	key := pin
	if pin != nil {
		disc.Trust = TrustPinned
	} else if known != nil {
		remembered, ok, err := known.Key(id)
		if err != nil {
			return nil, err
		}
		if ok {
			key, disc.Trust = remembered, TrustRemembered
		}
	}
	d, err := Fetch(ctx, hc, id, descriptor.VerifyOptions{})
	if err != nil {
		return nil, err
	}
	switch {
	case disc.Trust == TrustPinned && !sameKey(d.Key, key):
		return nil, fmt.Errorf("requester: %s: %w", id, descriptor.ErrKeyMismatch)
	case disc.Trust == TrustRemembered && !sameKey(d.Key, key):
		return nil, &KeyChangedError{Provider: id, Remembered: address.EncodeKey(key), Seen: address.EncodeKey(d.Key), File: known.Path()}
	}
	if err := mine.check(id, d); err != nil {
		return nil, err
	}
	disc.Descriptor = d
	keyText := address.EncodeKey(d.Key)
	switch {
	case disc.Trust == TrustNone && known != nil:
		if err := known.Remember(id, d.Key); err != nil {
			return nil, err
		}
		disc.Trust = TrustFirstUse
		disc.Warnings = append(disc.Warnings, fmt.Sprintf("first use of %s: its key is %s (remembered in %s; a descriptor signed by another key will be refused)", id, keyText, known.Path()))
	case disc.Trust == TrustNone:
		disc.Warnings = append(disc.Warnings, fmt.Sprintf("%s is signed by %s; nothing is pinned or remembered", id, keyText))
	}
	if (disc.Trust == TrustNone || disc.Trust == TrustFirstUse) && !strings.HasPrefix(id, "https://") {
		disc.Warnings = append(disc.Warnings, fmt.Sprintf("nothing is pinned and %s is not https: whoever serves it could hand you another provider and network", id))
	}
	if d.Network.Type == descriptor.NetworkPeapod && len(d.Network.Authorities) == 0 && mine.trust == nil {
		disc.Warnings = append(disc.Warnings, fmt.Sprintf("%s's network names no directory authorities: its topology is not signed, and whoever answers on %s chooses your routes", id, d.Network.Directory))
	}
	if !d.SelfCertifying && pin == nil {
		disc.Warnings = append(disc.Warnings, fmt.Sprintf("the descriptor is signed by %s, which is not its address's key; pin it once you know it is the provider's", keyText))
	}
	return disc, nil
}
