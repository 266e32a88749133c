package nymapi

import (
	"sync"

	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/wsapi"
)

// receiveLoop takes messages from the backend while at least one
// application is connected and gives each to every connection. While none
// is connected it does not read, so messages wait in the backend (and, past
// its inbox, at the gateway). A message it has taken but could not give to
// any connection, because they all closed, is kept for the next one.
func (s *Server) receiveLoop() {
	defer s.wg.Done()
	var held *client.Message
	for {
		ctx, ok := s.waitActive()
		if !ok {
			if held != nil {
				s.log.Warn().Int("bytes", len(held.Data)).Msg("closing with a received message no application took")
			}
			return
		}
		if held == nil {
			m, err := s.cfg.Backend.ReceiveKept(ctx)
			if err != nil {
				if ctx.Err() != nil {
					continue // no connection left, or closing
				}
				s.log.Error().Err(err).Msg("the client stopped delivering messages; no more will reach the applications")
				return
			}
			held = &m
		}
		if s.broadcast(*held) {
			held = nil
		}
	}
}

// broadcast gives m to every open connection, waiting while a queue is full
// until its connection is found too slow (see outQueue.push). It reports
// whether any connection took it.
func (s *Server) broadcast(m client.Message) bool {
	var once sync.Once
	f := outFrame{
		resp: wsapi.Received{SenderTag: m.SenderTag, Data: m.Data},
		size: len(m.Data),
		// The first connection that writes it out lets the backend forget it.
		written: func() { once.Do(func() { s.cfg.Backend.Forget(m) }) },
	}
	taken := false
	for _, c := range s.connections() {
		if c.push(f) {
			taken = true
		}
	}
	return taken
}
