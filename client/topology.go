package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// mixLayers is the number of mixnode layers every route crosses.
const mixLayers = 3

// netNode is a node of the topology, parsed.
type netNode struct {
	identity string // base58, as the directory lists it
	address  sphinx.NodeAddress
	// keys are the node's Sphinx keys by rotation: the current one, and the
	// next one once announced.
	keys map[uint32]sphinx.PublicKey
}

type netGateway struct {
	netNode
	identityKey ed25519.PublicKey
	clientURL   *url.URL
	// noiseKey is the key the client's handshake is encrypted to.
	noiseKey [directory.KeySize]byte
}

// netView is one parsed topology.
type netView struct {
	layers    [mixLayers][]netNode
	gateways  map[string]*netGateway // by identity bytes
	meanDelay *time.Duration         // advertised by the network, if it does
	// rotation is the key rotation of the topology's epoch: packets are
	// built with its keys.
	rotation uint32
	// sched is the network's timetable.
	sched directory.Schedule
	// epoch is the topology's epoch.
	epoch directory.EpochInfo
}

var errNoRoute = errors.New("client: the topology has no mixnode in some layer")

func parseTopology(t *directory.Topology) (*netView, []error) {
	v := &netView{gateways: map[string]*netGateway{}, rotation: t.Epoch.Rotation, sched: t.Schedule(), epoch: t.Epoch}
	var skipped []error
	for _, m := range t.Mixnodes {
		n, err := parseNode(m.Identity, m.SphinxKeys, m.AddrPort)
		if err != nil || m.Layer < 1 || m.Layer > mixLayers {
			skipped = append(skipped, fmt.Errorf("mixnode %s: %v (layer %d)", m.Identity, err, m.Layer))
			continue
		}
		v.layers[m.Layer-1] = append(v.layers[m.Layer-1], n)
	}
	for _, g := range t.Gateways {
		n, err := parseNode(g.Identity, g.SphinxKeys, g.AddrPort)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("gateway %s: %v", g.Identity, err))
			continue
		}
		id, err := g.IdentityKey()
		if err != nil {
			skipped = append(skipped, fmt.Errorf("gateway %s: %v", g.Identity, err))
			continue
		}
		u, err := g.ClientURL()
		if err != nil {
			skipped = append(skipped, fmt.Errorf("gateway %s: %v", g.Identity, err))
			continue
		}
		noise, ok, err := g.NoisePublicKey()
		if err == nil && !ok {
			err = errors.New("no noise_key, so a client cannot reach it without showing who it is")
		}
		if err != nil {
			skipped = append(skipped, fmt.Errorf("gateway %s: %v", g.Identity, err))
			continue
		}
		v.gateways[string(id)] = &netGateway{netNode: n, identityKey: id, clientURL: u, noiseKey: noise}
	}
	if t.Params != nil {
		d := time.Duration(t.Params.MeanMixDelay)
		v.meanDelay = &d
	}
	return v, skipped
}

func parseNode(identity string, listed []directory.SphinxKey, addrFn func() (netip.AddrPort, error)) (netNode, error) {
	ap, err := addrFn()
	if err != nil {
		return netNode{}, err
	}
	addr, err := sphinx.NewNodeAddress(ap)
	if err != nil {
		return netNode{}, err
	}
	keys := make(map[uint32]sphinx.PublicKey, len(listed))
	for _, k := range listed {
		raw, err := address.DecodeKey(k.Key, directory.KeySize)
		if err != nil {
			return netNode{}, err
		}
		pub, err := sphinx.ParsePublicKey(raw)
		if err != nil {
			return netNode{}, err
		}
		keys[k.Rotation] = pub
	}
	return netNode{identity: identity, address: addr, keys: keys}, nil
}

// isLayer1 reports whether a is the address of a layer-1 mixnode of v.
func (v *netView) isLayer1(a sphinx.NodeAddress) bool {
	for _, n := range v.layers[0] {
		if n.address == a {
			return true
		}
	}
	return false
}

func (v *netView) gateway(id []byte) (*netGateway, bool) {
	g, ok := v.gateways[string(id)]
	return g, ok
}

// routable reports whether a client of the gateway whose identity is gw
// can send with v at now: v lists the gateway, and it and a mixnode of
// every layer list keys of a rotation whose keys the nodes still hold.
func (v *netView) routable(gw []byte, now time.Time) bool {
	g, ok := v.gateway(gw)
	if !ok {
		return false
	}
	r := v.rotation
	if cur := v.sched.RotationAt(now); v.hasKeys(cur, &g.netNode) {
		r = cur
	}
	return v.hasKeys(r, &g.netNode) && now.Before(v.sched.KeyExpires(r))
}

// health keeps a score per mixnode so that routes avoid nodes that lose
// packets: a timed-out packet blames every mixnode of its route, an ack
// credits them. A dead node collects blame from every route through it,
// while the others also see acks; routes then prefer nodes in good standing
// until the directory drops the dead one. Scores decay, so a node that comes
// back is tried again.
type health struct {
	mu     sync.Mutex
	scores map[string]*nodeScore
}

type nodeScore struct {
	blame float64
	at    time.Time
}

const (
	healthHalfLife = 20 * time.Second
	healthBad      = 2.0 // blame above this makes a node a last resort
)

func (h *health) decayed(s *nodeScore, now time.Time) float64 {
	if s.blame == 0 {
		return 0
	}
	dt := now.Sub(s.at)
	if dt <= 0 {
		return s.blame
	}
	return s.blame * math.Exp2(-float64(dt)/float64(healthHalfLife))
}

func (h *health) adjust(ids []string, delta float64, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.scores == nil {
		h.scores = map[string]*nodeScore{}
	}
	for _, id := range ids {
		s := h.scores[id]
		if s == nil {
			s = &nodeScore{}
			h.scores[id] = s
		}
		s.blame = max(0, h.decayed(s, now)+delta)
		s.at = now
	}
}

func (h *health) good(id string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.scores[id]
	return s == nil || h.decayed(s, now) < healthBad
}

// pick chooses a node of nodes that has a key of rotation r, at random,
// preferring nodes in good standing; ok is false when none has.
func (h *health) pick(nodes []netNode, r uint32, now time.Time) (netNode, bool) {
	var good, any []int
	for i := range nodes {
		if _, ok := nodes[i].keys[r]; !ok {
			continue
		}
		any = append(any, i)
		if h.good(nodes[i].identity, now) {
			good = append(good, i)
		}
	}
	switch {
	case len(good) > 0:
		return nodes[good[rand.IntN(len(good))]], true
	case len(any) > 0:
		return nodes[any[rand.IntN(len(any))]], true
	}
	return netNode{}, false
}

// route draws a route through one mixnode of each layer to gw, with delays
// drawn from an exponential distribution of the given mean, built with the
// keys of the rotation under way at now if the view lists them (a view
// fetched before a rotation began still does), otherwise with those of the
// topology's rotation. It returns the hops, the identities of the
// mixnodes, and the sum of the delays.
func (v *netView) route(h *health, gw *netNode, mean time.Duration, now time.Time) ([]sphinx.Hop, []string, time.Duration, error) {
	r := v.rotation
	if cur := v.sched.RotationAt(now); v.hasKeys(cur, gw) {
		r = cur
	}
	return v.routeFor(r, h, gw, mean, now)
}

// routeFor is route with the keys of rotation r.
func (v *netView) routeFor(r uint32, h *health, gw *netNode, mean time.Duration, now time.Time) ([]sphinx.Hop, []string, time.Duration, error) {
	hops := make([]sphinx.Hop, 0, mixLayers+1)
	ids := make([]string, 0, mixLayers)
	var total time.Duration
	for l := range mixLayers {
		n, ok := h.pick(v.layers[l], r, now)
		if !ok {
			return nil, nil, 0, errNoRoute
		}
		d := time.Duration(rand.ExpFloat64() * float64(mean))
		total += d
		hops = append(hops, sphinx.Hop{Address: n.address, PublicKey: n.keys[r], Delay: d})
		ids = append(ids, n.identity)
	}
	gwKey, ok := gw.keys[r]
	if !ok {
		return nil, nil, 0, fmt.Errorf("client: gateway %s has no key of rotation %d", gw.identity, r)
	}
	hops = append(hops, sphinx.Hop{Address: gw.address, PublicKey: gwKey})
	return hops, ids, total, nil
}

// surbRotation is the rotation whose keys new SURBs are made with, so
// that a SURB lives as long as it can: the next rotation once its keys are
// announced (in the last epoch of the current one), else the one under way
// at now, else the topology's; the first of these for which gw and a node
// of every layer list a key.
func (v *netView) surbRotation(gw *netNode, now time.Time) uint32 {
	cur := v.sched.RotationAt(now)
	for _, r := range []uint32{cur + 1, cur} {
		if v.sched.Holds(r, now) && v.hasKeys(r, gw) {
			return r
		}
	}
	return v.rotation
}

// lacksAnnounced reports whether v may lack keys nodes have announced by
// now: it is of an earlier epoch, or the next rotation's keys are announced
// and v cannot route with them to gw.
func (v *netView) lacksAnnounced(gw *netNode, now time.Time) bool {
	next := v.sched.RotationAt(now) + 1
	return v.sched.Epoch(now) > v.epoch.Number || (v.sched.Holds(next, now) && !v.hasKeys(next, gw))
}

// hasKeys reports whether gw and a mixnode of every layer list a key of
// rotation r: whether a route can be built with them.
func (v *netView) hasKeys(r uint32, gw *netNode) bool {
	_, ok := gw.keys[r]
	return ok && v.layersHaveKeys(r)
}

// layersHaveKeys reports whether a mixnode of every layer lists a key of
// rotation r.
func (v *netView) layersHaveKeys(r uint32) bool {
	for l := range mixLayers {
		if !slices.ContainsFunc(v.layers[l], func(n netNode) bool { _, ok := n.keys[r]; return ok }) {
			return false
		}
	}
	return true
}

// fetchTopology reads and parses the directory's topology.
func fetchTopology(ctx context.Context, dir *directory.Client) (*netView, []error, error) {
	t, err := dir.Topology(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("client: reading the topology: %w", err)
	}
	v, skipped := parseTopology(t)
	return v, skipped, nil
}
