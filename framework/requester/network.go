package requester

import (
	"fmt"

	"github.com/peapod-mixnet/peapod/framework/descriptor"
)

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
// peapod network whose directory is directory (compared as ProviderID
// compares URLs); an empty directory accepts any.
func checkNetwork(provider string, d *descriptor.Descriptor, directory string) error {
	if directory == "" {
		return nil
	}
	want, err := ProviderID(directory)
	if err != nil {
		return fmt.Errorf("requester: Config.Directory %q is not an http(s) URL", directory)
	}
	got := d.Network.Directory
	if d.Network.Type != descriptor.NetworkPeapod || got == "" {
		got = "a " + d.Network.Type + " network"
	} else if id, err := ProviderID(got); err == nil && id == want {
		return nil
	}
	return &NetworkMismatchError{Provider: provider, Want: want, Got: got}
}
