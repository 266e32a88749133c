package directory

import (
	"crypto/ed25519"
	"fmt"
	"net/netip"
	"net/url"
)

// Topology is the mixnet's current map, as served at [PathTopology]. The
// server lists mixnodes by layer, then identity, and gateways by identity;
// both lists are empty, never null, when no node is registered.
type Topology struct {
	Mixnodes []Mixnode `json:"mixnodes"`
	Gateways []Gateway `json:"gateways"`
	// Params holds the network's advertised parameters, when it has any.
	Params *Params `json:"params,omitempty"`
	// Epoch is the epoch the topology was made in, and the network's
	// timetable of epochs and key rotations. Every listed node has a Sphinx
	// key for the epoch's rotation.
	Epoch EpochInfo `json:"epoch"`
}

// Params are the parameters a network advertises to its clients. A client
// uses them as its defaults; its own configuration wins.
type Params struct {
	// MeanMixDelay is the mean per-hop delay, in nanoseconds, senders should
	// draw their delays with (exponentially distributed). Zero means no
	// delay: a network for tests and benchmarks.
	MeanMixDelay int64 `json:"mean_mix_delay"`
}

// Mixnode is one mixnode of a [Topology]. Its fields hold the JSON text; the
// methods parse and check them.
type Mixnode struct {
	// Layer is the mixnode's layer, MinLayer..MaxLayer.
	Layer int `json:"layer"`
	// Address is the literal ip:port receiving Sphinx packets.
	Address string `json:"address"`
	// Identity is the base58 ed25519 identity key.
	Identity string `json:"identity"`
	// SphinxKeys are the node's Sphinx keys held in the topology's epoch,
	// one per key rotation, oldest first.
	SphinxKeys []SphinxKey `json:"sphinx_keys"`
	// NoiseKey is the base58 X25519 Noise static key; empty when the node
	// registered none.
	NoiseKey string `json:"noise_key,omitempty"`
}

// Gateway is one gateway of a [Topology]. Its fields hold the JSON text; the
// methods parse and check them.
type Gateway struct {
	// Address is the literal ip:port receiving Sphinx packets.
	Address string `json:"address"`
	// ClientAddress is the ws:// or wss:// URL where clients connect.
	ClientAddress string `json:"client_address"`
	// Identity is the base58 ed25519 identity key.
	Identity string `json:"identity"`
	// SphinxKeys are the node's Sphinx keys held in the topology's epoch,
	// one per key rotation, oldest first.
	SphinxKeys []SphinxKey `json:"sphinx_keys"`
	// NoiseKey is the base58 X25519 Noise static key; empty when the node
	// registered none.
	NoiseKey string `json:"noise_key,omitempty"`
}

// IdentityKey returns the mixnode's ed25519 identity key.
func (m Mixnode) IdentityKey() (ed25519.PublicKey, error) { return parseIdentity(m.Identity) }

// SphinxKeyFor returns the mixnode's X25519 Sphinx key of rotation r, if
// it lists one.
func (m Mixnode) SphinxKeyFor(r uint32) ([KeySize]byte, bool) { return sphinxKeyFor(m.SphinxKeys, r) }

// NoisePublicKey returns the mixnode's Noise static key; ok is false when
// it has none.
func (m Mixnode) NoisePublicKey() (key [KeySize]byte, ok bool, err error) {
	return parseOptionalKey("noise_key", m.NoiseKey)
}

// AddrPort returns the address where the mixnode receives packets.
func (m Mixnode) AddrPort() (netip.AddrPort, error) { return parseAddress(m.Address) }

// Validate reports the first field of m that does not parse.
func (m Mixnode) Validate() error {
	if err := checkLayer(m.Layer); err != nil {
		return err
	}
	if _, err := m.AddrPort(); err != nil {
		return err
	}
	if _, err := m.IdentityKey(); err != nil {
		return err
	}
	if err := checkSphinxKeys(m.SphinxKeys); err != nil {
		return err
	}
	_, _, err := m.NoisePublicKey()
	return err
}

// IdentityKey returns the gateway's ed25519 identity key.
func (g Gateway) IdentityKey() (ed25519.PublicKey, error) { return parseIdentity(g.Identity) }

// SphinxKeyFor returns the gateway's X25519 Sphinx key of rotation r, if it
// lists one.
func (g Gateway) SphinxKeyFor(r uint32) ([KeySize]byte, bool) { return sphinxKeyFor(g.SphinxKeys, r) }

// NoisePublicKey returns the gateway's Noise static key; ok is false when
// it has none.
func (g Gateway) NoisePublicKey() (key [KeySize]byte, ok bool, err error) {
	return parseOptionalKey("noise_key", g.NoiseKey)
}

// AddrPort returns the address where the gateway receives packets.
func (g Gateway) AddrPort() (netip.AddrPort, error) { return parseAddress(g.Address) }

// ClientURL returns the ws:// or wss:// URL where clients connect.
func (g Gateway) ClientURL() (*url.URL, error) { return parseClientAddress(g.ClientAddress) }

// Validate reports the first field of g that does not parse.
func (g Gateway) Validate() error {
	if _, err := g.AddrPort(); err != nil {
		return err
	}
	if _, err := g.ClientURL(); err != nil {
		return err
	}
	if _, err := g.IdentityKey(); err != nil {
		return err
	}
	if err := checkSphinxKeys(g.SphinxKeys); err != nil {
		return err
	}
	_, _, err := g.NoisePublicKey()
	return err
}

// Validate checks that every field of every node parses, that every layer
// is in range and that no identity appears twice. The error names the node.
func (t *Topology) Validate() error {
	seen := make(map[string]bool, len(t.Mixnodes)+len(t.Gateways))
	for i, m := range t.Mixnodes {
		if err := m.Validate(); err != nil {
			return fmt.Errorf("directory: mixnode %d (%s): %s", i, m.Identity, reason(err))
		}
		if seen[m.Identity] {
			return fmt.Errorf("directory: identity %q appears twice", m.Identity)
		}
		seen[m.Identity] = true
	}
	for i, g := range t.Gateways {
		if err := g.Validate(); err != nil {
			return fmt.Errorf("directory: gateway %d (%s): %s", i, g.Identity, reason(err))
		}
		if seen[g.Identity] {
			return fmt.Errorf("directory: identity %q appears twice", g.Identity)
		}
		seen[g.Identity] = true
	}
	if t.Params != nil && t.Params.MeanMixDelay < 0 {
		return fmt.Errorf("directory: params: mean_mix_delay %d is negative", t.Params.MeanMixDelay)
	}
	if _, err := t.Epoch.Schedule(); err != nil {
		return fmt.Errorf("directory: epoch: %s", reason(err))
	}
	return nil
}

// Schedule is the network's timetable, from the topology's epoch. It is
// valid for a topology that passed Validate.
func (t *Topology) Schedule() Schedule {
	s, _ := t.Epoch.Schedule()
	return s
}

// Layer returns the mixnodes of the given layer, in topology order.
func (t *Topology) Layer(layer int) []Mixnode {
	var out []Mixnode
	for _, m := range t.Mixnodes {
		if m.Layer == layer {
			out = append(out, m)
		}
	}
	return out
}

// Gateway returns the gateway with the given base58 identity.
func (t *Topology) Gateway(identity string) (Gateway, bool) {
	for _, g := range t.Gateways {
		if g.Identity == identity {
			return g, true
		}
	}
	return Gateway{}, false
}
