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
	switch r := req.(type) {
	case wsapi.Send:
		d, err := b.Send(c.ctx, r.Recipient, r.Data, client.WithLane(r.ConnectionID))
		return c.sent(fmt.Sprintf("send to %s (connection id %d)", r.Recipient, r.ConnectionID), d, err, text)

	case wsapi.SendAnonymous:
		d, err := b.SendAnonymous(c.ctx, r.Recipient, r.Data, int(r.ReplySURBs), client.WithLane(r.ConnectionID))
		return c.sent(fmt.Sprintf("anonymous send to %s (connection id %d)", r.Recipient, r.ConnectionID), d, err, text)

	case wsapi.Reply:
		d, err := b.Reply(c.ctx, r.SenderTag, r.Data, client.WithLane(r.ConnectionID))
		return c.sent(fmt.Sprintf("reply to sender tag %s (connection id %d)", r.SenderTag, r.ConnectionID), d, err, text)

	case wsapi.SelfAddress:
		return c.respond(wsapi.SelfAddressResponse{Address: b.Address()}, text)

	case wsapi.ClosedConnection:
		b.CloseLane(r.ConnectionID)
		return true

	case wsapi.GetLaneQueueLength:
		n := max(b.LaneQueueLength(r.ConnectionID), 0)
		return c.respond(wsapi.LaneQueueLength{Lane: r.ConnectionID, QueueLength: uint64(n)}, text)
	}
	// Unreachable: the request types are a closed set.
	return c.respond(wsapi.Error{Kind: wsapi.KindUnknownRequest, Message: fmt.Sprintf("request %T", req)}, text)
}

// sent follows up a send, anonymous send or reply: an error now is answered
// at once, a failure of the delivery later (see watch).
func (c *conn) sent(what string, d *client.Delivery, err error, text bool) bool {
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
		if c.ctx.Err() == nil && c.push(outFrame{resp: resp}) {
			c.log.Debug().Err(err).Str("request", what).Msg("delivery failed; told the application")
			return
		}
		c.log.Warn().Err(err).Str("request", what).Msg("delivery failed after the application disconnected")
	})
}
