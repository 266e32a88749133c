package anonymity

import (
	"math/rand/v2"
	"time"
)

// synthNet is a synthetic stratified network for the estimators' tests:
// clients, gateways and mixnodes per layer, in a Trace's Nodes.
type synthNet struct {
	trace    Trace
	clients  []int
	gateways []int
	layers   [Layers][]int
}

func newSynthNet(clients, gateways, perLayer int) *synthNet {
	s := &synthNet{}
	add := func(n Node) int {
		s.trace.Nodes = append(s.trace.Nodes, n)
		return len(s.trace.Nodes) - 1
	}
	for i := range clients {
		s.clients = append(s.clients, add(Node{Name: "client-" + string(rune('a'+i%26)), Role: RoleClient}))
	}
	for range gateways {
		s.gateways = append(s.gateways, add(Node{Name: "gateway", Role: RoleGateway}))
	}
	for l := range Layers {
		for range perLayer {
			s.layers[l] = append(s.layers[l], add(Node{Name: "mix", Role: RoleMixnode, Layer: l + 1}))
		}
	}
	return s
}

// synthPacket is one packet of a synthetic run and where its delivery
// landed in the sorted trace.
type synthPacket struct {
	sender, recipient int
	exitAt            time.Duration
}

// send adds the events of a packet from client sender, entering at t,
// through random nodes of each layer with the given per-mixnode delays
// (len Layers) and a fixed processing time per node, to recipient. Each
// client uses the gateway of its index.
func (s *synthNet) send(sender, recipient int, t time.Duration, delays []time.Duration, proc time.Duration, rng *rand.Rand) synthPacket {
	gwIn := s.gateways[sender%len(s.gateways)]
	gwOut := s.gateways[recipient%len(s.gateways)]
	ev := func(from, to int) {
		s.trace.Events = append(s.trace.Events, Event{At: t, From: from, To: to, Class: ClassData})
	}
	ev(s.clients[sender], gwIn)
	t += proc
	prev := gwIn
	for l := range Layers {
		m := s.layers[l][rng.IntN(len(s.layers[l]))]
		ev(prev, m)
		t += delays[l] + proc
		prev = m
	}
	ev(prev, gwOut)
	t += proc
	ev(gwOut, s.clients[recipient])
	return synthPacket{sender: s.clients[sender], recipient: s.clients[recipient], exitAt: t}
}

// targets sorts the trace and finds each packet's delivery event.
func (s *synthNet) targets(ps []synthPacket) []Target {
	s.trace.Sort()
	type key struct {
		at time.Duration
		to int
	}
	exits := make(map[key]int)
	for i, e := range s.trace.Events {
		if s.trace.IsExit(e) {
			exits[key{e.At, e.To}] = i
		}
	}
	var out []Target
	for _, p := range ps {
		if i, ok := exits[key{p.exitAt, p.recipient}]; ok {
			out = append(out, Target{Event: i, Sender: p.sender})
		}
	}
	return out
}

// poissonRun simulates every client sending packets at rate perSecond for
// dur to random other clients, with exponential delays of mean mu at each
// mixnode, and returns the packets.
func (s *synthNet) poissonRun(perSecond float64, dur, mu, proc time.Duration, seed uint64) []synthPacket {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var ps []synthPacket
	for c := range s.clients {
		t := time.Duration(0)
		for {
			t += time.Duration(rng.ExpFloat64() / perSecond * float64(time.Second))
			if t >= dur {
				break
			}
			to := rng.IntN(len(s.clients) - 1)
			if to >= c {
				to++
			}
			delays := make([]time.Duration, Layers)
			for l := range delays {
				delays[l] = time.Duration(rng.ExpFloat64() * float64(mu))
			}
			ps = append(ps, s.send(c, to, t, delays, proc, rng))
		}
	}
	return ps
}
