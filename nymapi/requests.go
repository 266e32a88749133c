package nymapi

import (
	"fmt"

	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/wsapi"
)

// handle serves one request that came in frame type text. It reports false
// when the connection has closed.
func (c *conn) handle(req wsapi.Request, text bool) bool {
	b := c.s.cfg.Backend
	if i := requestIndex(req); i >= 0 {
		c.s.stats.requests[i].Add(1)
	}
	switch r := req.(type) {
	case wsapi.Send:
		d, err := b.Send(c.ctx, r.Recipient, r.Data, client.WithLane(r.ConnectionID))
		return c.sent(fmt.Sprintf("send to %s (connection id %d)", r.Recipient, r.ConnectionID), d, err, text, r)

	case wsapi.SendAnonymous:
		d, err := b.SendAnonymous(c.ctx, r.Recipient, r.Data, int(r.ReplySURBs), client.WithLane(r.ConnectionID))
		return c.sent(fmt.Sprintf("anonymous send to %s (connection id %d)", r.Recipient, r.ConnectionID), d, err, text, r)

	case wsapi.Reply:
		d, err := b.Reply(c.ctx, r.SenderTag, r.Data, client.WithLane(r.ConnectionID))
		return c.sent(fmt.Sprintf("reply to sender tag %s (connection id %d)", r.SenderTag, r.ConnectionID), d, err, text, r)

	case wsapi.SelfAddress:
		return c.respond(wsapi.SelfAddressResponse{Address: b.Address()}, text)

	case wsapi.ClosedConnection:
		b.CloseLane(r.ConnectionID)
		return true

	case wsapi.GetLaneQueueLength:
		return c.respond(c.laneQueueLength(r.ConnectionID), text)
	}
	// Unreachable: the request types are a closed set.
	return c.respond(wsapi.Error{Kind: wsapi.KindUnknownRequest, Message: fmt.Sprintf("request %T", req)}, text)
}

// laneQueueLength returns the answer about lane.
func (c *conn) laneQueueLength(lane uint64) wsapi.LaneQueueLength {
	n := max(c.s.cfg.Backend.LaneQueueLength(lane), 0)
	return wsapi.LaneQueueLength{Lane: lane, QueueLength: uint64(n)}
}

// laneNamer is a send request that may name its lane (wsapi.Send.Lane).
type laneNamer interface {
	Lane() (lane uint64, named bool)
}

// sent follows up a send, anonymous send or reply: an error now is answered
// at once, a failure of the delivery later (see watch). A request that named
// its lane is answered with that lane's queue length once the message is
// queued, as Nym's client does.
func (c *conn) sent(what string, d *client.Delivery, err error, text bool, req laneNamer) bool {
	if err != nil {
		if c.ctx.Err() != nil {
			return false // the connection closed while the send waited
		}
		c.log.Debug().Err(err).Str("request", what).Msg("request failed")
		return c.respond(wsapi.Error{Kind: wsapi.KindOther, Message: what + ": " + err.Error()}, text)
	}
	if d != nil {
		c.watch(what, d)
	}
	if lane, named := req.Lane(); named {
		return c.respond(c.laneQueueLength(lane), text)
	}
	return true
}

// watch waits, on a goroutine of its own, for a delivery to end, and reports
// a failure to the connection as an Error of kind KindOther, in the
// connection's frame type at that time. A failure that comes after the
// connection closed is logged instead; one that comes after the Server
// closed is not reported.
func (c *conn) watch(what string, d *client.Delivery) {
	c.s.spawn(func() {
		select {
		case <-d.Done():
		case <-c.s.ctx.Done():
			return
		}
		err := d.Err()
		if err == nil {
			return
		}
		resp := wsapi.Error{Kind: wsapi.KindOther, Message: what + " failed: " + err.Error()}
		c.s.stats.countError(resp.Kind)
		if c.ctx.Err() == nil && c.push(outFrame{resp: resp, size: answerSize(resp)}) {
			c.log.Debug().Err(err).Str("request", what).Msg("delivery failed; told the application")
			return
		}
		c.log.Warn().Err(err).Str("request", what).Msg("delivery failed after the application disconnected")
	})
}
