package gateway

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/peapod-mixnet/peapod/internal/node"
	"github.com/peapod-mixnet/peapod/internal/wire"
)

// DropReason says why the gateway discarded a packet or a message; it is the
// reason label of peapod_gateway_dropped_total and a key of Stats.Dropped.
type DropReason string

// The reasons a packet or a message is dropped.
const (
	// DropAuthentication: a packet from a mixnode failed Sphinx header
	// authentication (not made for this gateway's key, or tampered with).
	DropAuthentication DropReason = "authentication"
	// DropReplay: a packet from a mixnode was processed before.
	DropReplay DropReason = "replay"
	// DropExpiredKey: a packet from a mixnode names a key rotation the
	// gateway holds no key for (made for a key whose life has ended).
	DropExpiredKey DropReason = "expired_key"
	// DropBadPacket: a packet from a mixnode authenticated but its version,
	// routing slot or payload was bad.
	DropBadPacket DropReason = "bad_packet"
	// DropNotFinal: a packet named a further hop; a gateway is always the
	// last hop.
	DropNotFinal DropReason = "not_final"
	// DropUnknownClient: a packet's destination is not a registered client.
	DropUnknownClient DropReason = "unknown_client"
	// DropMalformedPayload: a data packet's payload is too short to hold a
	// SURB-ack, or its ack's first hop is not a node address.
	DropMalformedPayload DropReason = "malformed_payload"
	// DropAckHop: a data packet's SURB-ack names a first hop that is not a
	// layer-1 mixnode of the topology.
	DropAckHop DropReason = "ack_hop"
	// DropForwardRefused: a client asked to forward a packet to a hop that
	// is not a layer-1 mixnode of the topology.
	DropForwardRefused DropReason = "forward_refused"
	// DropSendFailed: the outbound pool refused a packet (queue full,
	// closing).
	DropSendFailed DropReason = "send_failed"
	// DropStoreFailed: the database failed to store a message; the sender
	// gets no ack and retransmits.
	DropStoreFailed DropReason = "store_failed"
	// DropStoreShare: a message for the store came from a mixnode whose
	// messages on their way to the store were a quarter of the store queue
	// already (the mixnode delivers faster than the store commits); the
	// sender gets no ack and retransmits.
	DropStoreShare DropReason = "store_share"
	// DropExitQueueFull: a packet from a mixnode found no room in the exit
	// queue, and its peer held at least as much of the queue as any other
	// (the gateway is overloaded, or the peer sends more than its share).
	DropExitQueueFull DropReason = "exit_queue_full"
	// DropExitQueueEvicted: a packet from a mixnode waited to be peeled,
	// the newest of the peer holding the most of the full exit queue, and
	// made room for a packet of a peer holding less.
	DropExitQueueEvicted DropReason = "exit_queue_evicted"
	// DropStoreFull: the store, or the recipient's inbox in it, holds as
	// many messages as allowed (Config.MaxStored, MaxStoredPerClient); the
	// sender gets no ack and retransmits, so the message comes once the
	// recipient has taken some of its messages or they have expired.
	DropStoreFull DropReason = "store_full"
)

var dropReasons = []DropReason{
	DropAuthentication, DropReplay, DropExpiredKey, DropBadPacket, DropNotFinal, DropUnknownClient,
	DropMalformedPayload, DropAckHop, DropForwardRefused, DropSendFailed, DropStoreFailed,
	DropStoreFull, DropStoreShare, DropExitQueueFull, DropExitQueueEvicted,
}

// RefusalReason says why the gateway refused a client connection or a
// registration; it is the reason label of peapod_gateway_refused_total and a
// key of Stats.Refused.
type RefusalReason string

// The limits a connection or a registration is refused at.
const (
	// RefusedHandshakes: Config.MaxHandshakes connections were in their
	// handshake already.
	RefusedHandshakes RefusalReason = "handshakes"
	// RefusedHandshakesPerSource: Config.MaxHandshakesPerSource connections
	// from the same source address were in their handshake already.
	RefusedHandshakesPerSource RefusalReason = "handshakes_per_source"
	// RefusedRegistrations: Config.MaxClients clients were registered.
	RefusedRegistrations RefusalReason = "registrations"
	// RefusedRegistrationsPerSource: Config.MaxClientsPerSource clients
	// were registered from the same source address.
	RefusedRegistrationsPerSource RefusalReason = "registrations_per_source"
)

var refusalReasons = []RefusalReason{
	RefusedHandshakes, RefusedHandshakesPerSource, RefusedRegistrations, RefusedRegistrationsPerSource,
}

// Stats are a gateway's counters since New, and its state now.
type Stats struct {
	// PacketsFromMixes counts frames received from mixnodes.
	PacketsFromMixes uint64
	// ForwardedForClients counts client packets handed to the outbound pool
	// for their first hop.
	ForwardedForClients uint64
	// DeliveredLive counts messages handed at once to a connected client.
	DeliveredLive uint64
	// DeliveredFromStore counts stored messages handed to a client in pages
	// (a message handed over twice, after a reconnection, counts twice).
	DeliveredFromStore uint64
	// Stored counts messages committed to the store.
	Stored uint64
	// Confirmed counts messages a client confirmed with Received.
	Confirmed uint64
	// AcksSent counts SURB-acks handed to the outbound pool.
	AcksSent uint64
	// Purged counts stored messages deleted for being older than
	// MessageTTL.
	Purged uint64
	// HandshakeFailures counts client connections closed before or during
	// the handshake; ClientErrors those closed afterwards for a bad frame.
	HandshakeFailures, ClientErrors uint64
	// Dropped counts discarded packets and messages by reason; every reason
	// is present.
	Dropped map[DropReason]uint64
	// Refused counts connections and registrations refused at a limit, by
	// reason; every reason is present.
	Refused map[RefusalReason]uint64
	// ExpiredClients counts registered clients forgotten after ClientTTL
	// without authenticating.
	ExpiredClients uint64
	// Handshakes is the number of client connections in their handshake
	// now.
	Handshakes int
	// ConnectedClients is the number of authenticated connections now.
	ConnectedClients int
	// StoredMessages is the number of messages in the store now.
	StoredMessages int
	// RegisteredClients is the number of clients registered now.
	RegisteredClients int
	// ExitQueue is the number of packets from mixnodes waiting to be
	// peeled now, and PeerExitQueues what each upstream peer holds of them
	// (by wire.PeerID.String: a Noise key in base58, or an address).
	ExitQueue      int
	PeerExitQueues map[string]int
	// PeerDrops counts the packets from mixnodes dropped, for any reason,
	// by the upstream peer that sent them (the first 256 peers with drops;
	// the rest under fairq.OtherPeers, "other").
	PeerDrops map[string]uint64
}

// counters are a gateway's event counters.
type counters struct {
	fromMixes, forwarded, deliveredLive, deliveredStored, stored atomic.Uint64
	confirmed, acksSent, purged, handshakeFailures, clientErrors atomic.Uint64
	expiredClients                                               atomic.Uint64
	dropped                                                      map[DropReason]*atomic.Uint64
	refused                                                      map[RefusalReason]*atomic.Uint64
}

func newCounters() *counters {
	c := &counters{
		dropped: make(map[DropReason]*atomic.Uint64, len(dropReasons)),
		refused: make(map[RefusalReason]*atomic.Uint64, len(refusalReasons)),
	}
	for _, r := range dropReasons {
		c.dropped[r] = new(atomic.Uint64)
	}
	for _, r := range refusalReasons {
		c.refused[r] = new(atomic.Uint64)
	}
	return c
}

// drop counts a drop for reason.
func (c *counters) drop(reason DropReason) { c.dropped[reason].Add(1) }

// refuse counts a refusal for reason.
func (c *counters) refuse(reason RefusalReason) { c.refused[reason].Add(1) }

// newRegistry returns a Prometheus registry of its own, so that several
// gateways can share a process, exposing g's counters and gauges.
func newRegistry(g *Gateway) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	c := g.counters
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	gauge := func(name, help string, f func() int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return float64(f()) })
	}
	reg.MustRegister(
		counter("peapod_gateway_packets_from_mixes_total", "Frames received from mixnodes.", &c.fromMixes),
		counter("peapod_gateway_forwarded_total", "Client packets sent on to their first mixnode.", &c.forwarded),
		counter("peapod_gateway_delivered_live_total", "Messages handed at once to a connected client.", &c.deliveredLive),
		counter("peapod_gateway_delivered_from_store_total", "Stored messages handed to a client.", &c.deliveredStored),
		counter("peapod_gateway_stored_total", "Messages committed to the store.", &c.stored),
		counter("peapod_gateway_confirmed_total", "Messages clients confirmed as received.", &c.confirmed),
		counter("peapod_gateway_acks_sent_total", "SURB-acks sent into the mixnet.", &c.acksSent),
		counter("peapod_gateway_purged_total", "Stored messages purged after their TTL.", &c.purged),
		counter("peapod_gateway_handshake_failures_total", "Client connections closed before or during the handshake.", &c.handshakeFailures),
		counter("peapod_gateway_client_errors_total", "Authenticated client connections closed for a bad frame.", &c.clientErrors),
		gauge("peapod_gateway_connected_clients", "Authenticated client connections.", g.connectedClients),
		gauge("peapod_gateway_stored_messages", "Messages in the store.", g.store.stored),
		gauge("peapod_gateway_registered_clients", "Registered clients.", g.store.clientCount),
		counter("peapod_gateway_expired_clients_total", "Registered clients forgotten after ClientTTL without authenticating.", &c.expiredClients),
		gauge("peapod_gateway_handshakes_in_progress", "Client connections in their handshake.", g.admission.inProgress),
		node.NewKeysCollector(g.sphinx),
	)
	for _, r := range refusalReasons {
		v := c.refused[r]
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "peapod_gateway_refused_total",
			Help:        "Client connections and registrations refused at a limit, by the limit.",
			ConstLabels: prometheus.Labels{"reason": string(r)},
		}, func() float64 { return float64(v.Load()) }))
	}
	for name, v := range map[string]float64{
		string(RefusedHandshakes):             float64(g.cfg.MaxHandshakes),
		string(RefusedHandshakesPerSource):    float64(g.cfg.MaxHandshakesPerSource),
		string(RefusedRegistrations):          float64(g.cfg.MaxClients),
		string(RefusedRegistrationsPerSource): float64(g.cfg.MaxClientsPerSource),
		"stored":                              float64(g.cfg.MaxStored),
		"stored_per_client":                   float64(g.cfg.MaxStoredPerClient),
		"pending_per_client":                  float64(g.cfg.MaxPendingPerClient),
		"client_ttl_seconds":                  g.cfg.ClientTTL.Seconds(),
		"message_ttl_seconds":                 g.cfg.MessageTTL.Seconds(),
	} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "peapod_gateway_limit",
			Help: "The gateway's limits, by name: on clients in their handshake and registered (named as the refusal they cause; -1: no limit), " +
				"on stored and pending messages, and the client and message TTLs in seconds.",
			ConstLabels: prometheus.Labels{"limit": name},
		}, func() float64 { return max(v, -1) }))
	}
	reg.MustRegister(mixCollector{g}, newPeerCollector(g))
	for _, r := range dropReasons {
		v := c.dropped[r]
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "peapod_gateway_dropped_total",
			Help:        "Packets and messages discarded, by reason.",
			ConstLabels: prometheus.Labels{"reason": string(r)},
		}, func() float64 { return float64(v.Load()) }))
	}
	return reg
}

// mixCollector exports the mix listener's connection metrics (package
// wire's collector, prefixed peapod_gateway_mix_), and those of the
// outbound pool to layer-1 mixnodes (prefixed peapod_gateway_), once Start
// has made them (the pool first). It is an unchecked collector: it describes nothing up front.
type mixCollector struct{ g *Gateway }

// Describe implements prometheus.Collector.
func (mixCollector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c mixCollector) Collect(ch chan<- prometheus.Metric) {
	c.g.mu.Lock()
	srv := c.g.mixServer
	c.g.mu.Unlock()
	if srv != nil {
		wire.NewCollector("peapod_gateway_mix_", srv).Collect(ch)
		wire.NewPoolCollector("peapod_gateway_", c.g.pool).Collect(ch)
	}
}

// peerCollector exports the exit queue and the drops by upstream peer.
type peerCollector struct {
	g                         *Gateway
	depth, peerDepth, dropped *prometheus.Desc
}

func newPeerCollector(g *Gateway) peerCollector {
	return peerCollector{
		g:     g,
		depth: prometheus.NewDesc("peapod_gateway_exit_queue_depth", "Packets from mixnodes waiting to be peeled.", nil, nil),
		peerDepth: prometheus.NewDesc("peapod_gateway_peer_exit_queue_depth", "Packets an upstream peer (a layer-3 mixnode's Noise key) "+
			"holds in the exit queue now; peers holding none are absent.", []string{"peer"}, nil),
		dropped: prometheus.NewDesc("peapod_gateway_peer_packets_dropped_total", "Packets from mixnodes dropped, by the upstream peer "+
			"that sent them (the first 256 peers with drops; the rest under peer=\"other\").", []string{"peer"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c peerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.peerDepth
	ch <- c.dropped
}

// Collect implements prometheus.Collector.
func (c peerCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(c.g.exitQ.Len()))
	for peer, v := range c.g.peerExitQueues() {
		ch <- prometheus.MustNewConstMetric(c.peerDepth, prometheus.GaugeValue, float64(v), peer)
	}
	for peer, v := range c.g.peerDrops.Snapshot() {
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(v), peer)
	}
}
