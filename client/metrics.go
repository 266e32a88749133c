package client

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/peapod-mixnet/peapod/directory"
)

// statMetric is one series of NewCollector, read from a Stats snapshot.
type statMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(Stats) float64
}

// collector exports a Client's Stats as Prometheus metrics. It takes one
// snapshot per scrape, so the client's packet path updates only its atomics.
type collector struct {
	c       *Client
	metrics []statMetric
	refused *prometheus.Desc
	limit   *prometheus.Desc
}

// Limits are the bounds a Client keeps within, whatever others send it
// (Config with its defaults applied).
type Limits struct {
	// SURBSenders and SURBsHeld are SURBs.MaxSenders and SURBs.MaxHeld.
	SURBSenders, SURBsHeld int
	// Window bounds the fragments in flight.
	Window int
	// InboxMessages and InboxBytes bound the messages not yet taken by the
	// application (InboxSize, InboxBytes).
	InboxMessages, InboxBytes int
	// IncompleteBytes bounds what incomplete messages hold
	// (MaxIncompleteBytes); MessageBytes is MaxMessageSize.
	IncompleteBytes, MessageBytes int
}

// Limits returns the bounds c keeps within.
func (c *Client) Limits() Limits {
	return Limits{
		SURBSenders: c.cfg.SURBs.MaxSenders, SURBsHeld: c.cfg.SURBs.MaxHeld,
		Window:        c.cfg.Window,
		InboxMessages: c.cfg.InboxSize, InboxBytes: c.cfg.InboxBytes,
		IncompleteBytes: c.cfg.MaxIncompleteBytes, MessageBytes: c.cfg.MaxMessageSize,
	}
}

// series returns the limits by the label NewCollector gives them.
func (l Limits) series() map[string]int {
	return map[string]int{
		"surb_senders": l.SURBSenders, "surbs_held": l.SURBsHeld, "window": l.Window,
		"inbox_messages": l.InboxMessages, "inbox_bytes": l.InboxBytes,
		"incomplete_bytes": l.IncompleteBytes, "message_bytes": l.MessageBytes,
	}
}

// NewCollector returns a Prometheus collector of c's Stats, read at scrape
// time:
//
//	peapod_client_packets_sent_total                  real and cover packets handed to the gateway
//	peapod_client_cover_sent_total                    cover packets among them
//	peapod_client_retransmits_total                   fragments sent again for want of an ack
//	peapod_client_acks_total                          acks that matched a fragment in flight
//	peapod_client_packets_received_total              packets from the gateway other than acks (loop cover included)
//	peapod_client_undecryptable_total                 packets the client could not decrypt
//	peapod_client_bad_messages_total                  malformed fragments and messages dropped
//	peapod_client_delivered_total                     messages handed to the application
//	peapod_client_fragments_in_flight                 fragments sent and not yet acknowledged
//	peapod_client_fragments_queued                    fragments waiting for the send window
//	peapod_client_surbs_held                          reply SURBs held, from every anonymous sender
//	peapod_client_surb_senders                        anonymous senders whose SURBs are held
//	peapod_client_surb_senders_evicted_total          senders whose SURBs were dropped whole
//	peapod_client_surb_requests_total                 requests for more SURBs sent
//	peapod_client_inbox_bytes                         data received and not yet taken
//	peapod_client_incomplete_bytes                    data held for messages not complete yet
//	peapod_client_inbox_full                          1 while reading from the gateway stops for a full inbox
//	peapod_client_order_held                          complete messages waiting for an earlier one
//	peapod_client_order_skipped_total                 sequence numbers given up on
//	peapod_client_incomplete_dropped_total            incomplete messages dropped (memory bound or age)
//	peapod_client_too_long_total                      messages dropped as longer than the maximum
//	peapod_client_gateway_connected                   1 while the gateway link is up
//	peapod_client_gateway_reconnects_total            reconnections to the gateway
//	peapod_topology_documents_refused_total{reason}   as mixnodes, gateways and the provider count them
//	peapod_client_limit{limit}                        the bounds of Limits: surb_senders, surbs_held, window,
//	                                                  inbox_messages, inbox_bytes, incomplete_bytes, message_bytes
//
// No series carries an address, a sender tag or a key.
func NewCollector(c *Client) prometheus.Collector {
	m := func(name, help string, kind prometheus.ValueType, value func(Stats) float64) statMetric {
		return statMetric{prometheus.NewDesc("peapod_client_"+name, help, nil, nil), kind, value}
	}
	counter := prometheus.CounterValue
	gauge := prometheus.GaugeValue
	return &collector{
		c: c,
		metrics: []statMetric{
			m("packets_sent_total", "Real and cover packets handed to the gateway.", counter, func(s Stats) float64 { return float64(s.PacketsSent) }),
			m("cover_sent_total", "Cover packets handed to the gateway.", counter, func(s Stats) float64 { return float64(s.CoverSent) }),
			m("retransmits_total", "Fragments sent again because no ack came in time.", counter, func(s Stats) float64 { return float64(s.Retransmits) }),
			m("acks_total", "Acks that matched a fragment in flight.", counter, func(s Stats) float64 { return float64(s.Acks) }),
			m("packets_received_total", "Packets from the gateway other than acks, loop cover included.", counter, func(s Stats) float64 { return float64(s.Received) }),
			m("undecryptable_total", "Packets from the gateway the client could not decrypt.", counter, func(s Stats) float64 { return float64(s.Undecryptable) }),
			m("bad_messages_total", "Decrypted fragments or reassembled messages dropped as malformed.", counter, func(s Stats) float64 { return float64(s.BadMessages) }),
			m("delivered_total", "Messages handed to the application.", counter, func(s Stats) float64 { return float64(s.Delivered) }),
			m("fragments_in_flight", "Fragments sent and not yet acknowledged.", gauge, func(s Stats) float64 { return float64(s.InFlight) }),
			m("fragments_queued", "Fragments waiting for the send window.", gauge, func(s Stats) float64 { return float64(s.Queued) }),
			m("surbs_held", "Reply SURBs held, from every anonymous sender.", gauge, func(s Stats) float64 { return float64(s.SURBsHeld) }),
			m("surb_senders", "Anonymous senders whose SURBs are held.", gauge, func(s Stats) float64 { return float64(s.SURBSenders) }),
			m("surb_senders_evicted_total", "Anonymous senders whose SURBs were dropped whole to stay within the bounds.", counter,
				func(s Stats) float64 { return float64(s.SURBSendersEvicted) }),
			m("surb_requests_total", "Requests for more SURBs sent to anonymous senders.", counter, func(s Stats) float64 { return float64(s.SURBRequests) }),
			m("inbox_bytes", "Data of the messages received and not yet taken by the application.", gauge, func(s Stats) float64 { return float64(s.InboxBytes) }),
			m("incomplete_bytes", "Data held for messages not complete yet.", gauge, func(s Stats) float64 { return float64(s.IncompleteBytes) }),
			m("inbox_full", "1 while the client reads nothing from its gateway because the inbox is full.", gauge, func(s Stats) float64 { return boolValue(s.InboxFull) }),
			m("order_held", "Complete messages waiting for an earlier one from their sender.", gauge, func(s Stats) float64 { return float64(s.OrderHeld) }),
			m("order_skipped_total", "Sequence numbers given up on after the gap wait.", counter, func(s Stats) float64 { return float64(s.OrderSkipped) }),
			m("incomplete_dropped_total", "Incomplete messages dropped to stay within the memory bound, or for age.", counter,
				func(s Stats) float64 { return float64(s.IncompleteDropped) }),
			m("too_long_total", "Messages dropped because their fragments made them longer than the maximum.", counter, func(s Stats) float64 { return float64(s.TooLong) }),
			m("gateway_connected", "1 while the client's link to its gateway is up.", gauge, func(s Stats) float64 { return boolValue(s.Connected) }),
			m("gateway_reconnects_total", "Reconnections to the gateway.", counter, func(s Stats) float64 { return float64(s.Reconnects) }),
		},
		refused: prometheus.NewDesc("peapod_topology_documents_refused_total",
			"Topology documents from the directory authorities refused, by reason.", []string{"reason"}, nil),
		limit: prometheus.NewDesc("peapod_client_limit",
			"The client's bounds on what others make it hold, by name (see client.Limits).", []string{"limit"}, nil),
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
	ch <- c.refused
	ch <- c.limit
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.c.Stats()
	for _, m := range c.metrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(st))
	}
	for _, why := range directory.RefusedReasons {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(st.TopologyRefused[why]), why)
	}
	for name, v := range c.c.Limits().series() {
		ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(v), name)
	}
}
