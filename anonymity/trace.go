package anonymity

import (
	"fmt"
	"slices"
	"time"
)

// Role is what a node is in the stratified topology.
type Role uint8

// The roles. A client is any party that sends and receives through a
// gateway: an application's client or a provider's.
const (
	RoleClient Role = iota
	RoleGateway
	RoleMixnode
)

func (r Role) String() string {
	switch r {
	case RoleClient:
		return "client"
	case RoleGateway:
		return "gateway"
	case RoleMixnode:
		return "mixnode"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// Node is one party the adversary sees at the end of a link.
type Node struct {
	// Name names the node in reports, such as "client-3" or "mix-2-0".
	Name string
	Role Role
	// Layer is a mixnode's layer, 1 to Layers; 0 for other roles.
	Layer int
}

// Layers is the number of mixnode layers of the topology.
const Layers = 3

// Class is the size class of a packet, which an observer learns from its
// length.
type Class uint8

// The classes: data packets (real messages and cover traffic, one size)
// and everything else (acks, control frames), which the estimators ignore.
const (
	ClassData Class = iota
	ClassOther
)

// Event is one packet seen on a link.
type Event struct {
	// At is when it was seen, from the start of the trace.
	At time.Duration
	// From and To are indices into Trace.Nodes.
	From, To int
	// Class is its size class.
	Class Class
}

// Trace is what the adversary recorded.
type Trace struct {
	Nodes []Node
	// Events are in time order (Sort puts them there).
	Events []Event
}

// Sort puts the events in time order, keeping the order of equal times.
func (t *Trace) Sort() {
	slices.SortStableFunc(t.Events, func(a, b Event) int {
		switch {
		case a.At < b.At:
			return -1
		case a.At > b.At:
			return 1
		}
		return 0
	})
}

// Validate reports an event that names no node, events out of order, and
// a mixnode without a layer in 1..Layers.
func (t *Trace) Validate() error {
	for i, n := range t.Nodes {
		if n.Role == RoleMixnode && (n.Layer < 1 || n.Layer > Layers) {
			return fmt.Errorf("anonymity: node %d (%s) is a mixnode of layer %d", i, n.Name, n.Layer)
		}
	}
	for i, e := range t.Events {
		if e.From < 0 || e.From >= len(t.Nodes) || e.To < 0 || e.To >= len(t.Nodes) {
			return fmt.Errorf("anonymity: event %d names node %d or %d of %d", i, e.From, e.To, len(t.Nodes))
		}
		if i > 0 && e.At < t.Events[i-1].At {
			return fmt.Errorf("anonymity: event %d at %v comes before event %d at %v", i, e.At, i-1, t.Events[i-1].At)
		}
	}
	return nil
}

// Senders returns the indices of the clients that sent at least one data
// packet: the adversary's candidate senders.
func (t *Trace) Senders() []int {
	seen := make([]bool, len(t.Nodes))
	var out []int
	for _, e := range t.Events {
		if e.Class == ClassData && t.Nodes[e.From].Role == RoleClient && !seen[e.From] {
			seen[e.From] = true
			out = append(out, e.From)
		}
	}
	slices.Sort(out)
	return out
}

// Target is a delivered message whose sender the adversary tries to learn.
type Target struct {
	// Event is the index in Trace.Events of the packet that delivered it
	// (gateway to recipient).
	Event int
	// Sender is the index in Trace.Nodes of its true sender.
	Sender int
}

// IsEntry reports whether e enters the network: a client's packet to its
// gateway.
func (t *Trace) IsEntry(e Event) bool {
	return t.Nodes[e.From].Role == RoleClient && t.Nodes[e.To].Role == RoleGateway
}

// IsExit reports whether e leaves the network: a gateway's packet to a
// client.
func (t *Trace) IsExit(e Event) bool {
	return t.Nodes[e.From].Role == RoleGateway && t.Nodes[e.To].Role == RoleClient
}
