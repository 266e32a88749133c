package sphinx_test

import (
	"crypto/rand"
	"fmt"
	"log"
	"time"

	"github.com/peapod-mixnet/peapod/sphinx"
)

// node is a mixnode of the examples: a key and an address.
type node struct {
	proc *sphinx.Processor
	hop  sphinx.Hop
}

func newNode(addr string) node {
	key, err := sphinx.GenerateKey(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	a, err := sphinx.ParseNodeAddress(addr)
	if err != nil {
		log.Fatal(err)
	}
	filter := sphinx.NewReplayFilter(1000, sphinx.DefaultReplayFalsePositiveRate)
	return node{
		proc: sphinx.NewProcessor(key, filter),
		hop:  sphinx.Hop{Address: a, PublicKey: key.PublicKey(), Delay: 15 * time.Millisecond},
	}
}

// A sender builds a packet for three mixnodes and a gateway; each node peels
// one layer, and the gateway gets the message.
func ExampleNewPacket() {
	nodes := []node{newNode("10.0.0.1:1789"), newNode("10.0.0.2:1789"), newNode("10.0.0.3:1789"), newNode("10.0.0.4:1789")}
	route := []sphinx.Hop{nodes[0].hop, nodes[1].hop, nodes[2].hop, nodes[3].hop}
	dest := sphinx.Destination{0xD0}

	pkt, err := sphinx.NewPacket(rand.Reader, sphinx.RegularPacket, route, dest, sphinx.SURBID{}, []byte("hello mixnet"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("packet bytes:", len(pkt))
	for _, n := range nodes {
		res, err := n.proc.Process(nil, pkt)
		if err != nil {
			log.Fatal(err)
		}
		if res.Final {
			fmt.Printf("delivered to %x: %s\n", res.Destination[:1], res.Payload)
			break
		}
		fmt.Println("forward to", res.NextHop, "after", res.Delay)
		pkt = res.Packet
	}
	// Output:
	// packet bytes: 2413
	// forward to 10.0.0.2:1789 after 15ms
	// forward to 10.0.0.3:1789 after 15ms
	// forward to 10.0.0.4:1789 after 15ms
	// delivered to d0: hello mixnet
}

// The creator of a SURB hands it out; the holder replies on it without
// learning who the creator is; the creator opens the reply.
func ExampleNewSURB() {
	nodes := []node{newNode("10.0.0.1:1789"), newNode("10.0.0.2:1789"), newNode("10.0.0.3:1789")}
	route := []sphinx.Hop{nodes[0].hop, nodes[1].hop, nodes[2].hop}

	// The creator makes the SURB and keeps its key.
	surb, err := sphinx.NewSURB(rand.Reader, route, sphinx.Destination{0xC0}, sphinx.SURBID{1})
	if err != nil {
		log.Fatal(err)
	}
	creatorKey := surb.Key
	wire, _ := surb.AppendBinary(nil)
	fmt.Println("SURB bytes:", len(wire))

	// The holder decodes it, seals a reply and wraps it.
	held, _, err := sphinx.ParseSURB(wire, 3)
	if err != nil {
		log.Fatal(err)
	}
	sealed := sphinx.SealReply(nil, &held.Key, []byte("here is your answer"))
	pkt, err := held.NewPacket(sphinx.RegularPacket, sealed)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("send to", held.FirstHop)

	for _, n := range nodes {
		res, err := n.proc.Process(nil, pkt)
		if err != nil {
			log.Fatal(err)
		}
		if res.Final {
			reply, err := sphinx.OpenReply(nil, &creatorKey, res.Payload)
			if err != nil {
				log.Fatal(err)
			}
			fmt.Printf("creator reads: %s\n", reply)
			break
		}
		pkt = res.Packet
	}
	// Output:
	// SURB bytes: 444
	// send to 10.0.0.1:1789
	// creator reads: here is your answer
}

// A node refuses a packet it has already processed.
func ExampleReplayFilter() {
	n := newNode("10.0.0.1:1789")
	pkt, _ := sphinx.NewPacket(rand.Reader, sphinx.AckPacket, []sphinx.Hop{n.hop}, sphinx.Destination{}, sphinx.SURBID{}, []byte("ack"))
	_, err := n.proc.Process(nil, pkt)
	fmt.Println("first:", err)
	_, err = n.proc.Process(nil, pkt)
	fmt.Println("again:", err)
	// Output:
	// first: <nil>
	// again: sphinx: replayed packet
}
