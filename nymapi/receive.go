package nymapi

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/wsapi"
)

// receiveLoop takes messages from the backend while at least one
// application is connected and gives each to every connection. While none
// is connected it does not read, so messages wait in the backend (and, past
// its inbox, at the gateway). A message it has taken but could not give to
// any connection, because they all closed, is kept for the next one; so is
// one that every connection it went to dropped unwritten (they closed
// first), and it goes before the messages taken after it.
func (s *Server) receiveLoop() {
	defer s.wg.Done()
	var held *client.Message
	for {
		ctx, ok := s.waitActive()
		if !ok {
			if n := s.unsent(held); n > 0 {
				s.log.Info().Int("messages", n).Msg("closing with received messages no application took; the client keeps them")
			}
			return
		}
		if held == nil {
			held = s.takeReturned()
		}
		if held == nil {
			rctx, cancel := context.WithCancel(ctx)
			s.setReceiveCancel(cancel)
			m, err := s.cfg.Backend.ReceiveKept(rctx)
			woken := rctx.Err() != nil // no connection left, closing, or a message came back
			s.setReceiveCancel(nil)
			cancel()
			if err != nil {
				if woken {
					continue
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
	o := &outMessage{s: s, m: m}
	o.refs.Store(1) // broadcast's own, until every connection has had it
	f := outFrame{
		resp: wsapi.Received{SenderTag: m.SenderTag, Data: m.Data},
		size: len(m.Data),
		msg:  o,
	}
	taken := false
	for _, c := range s.connections() {
		o.refs.Add(1)
		if c.push(f) {
			taken = true
		} else {
			o.refs.Add(-1)
		}
	}
	if !taken {
		return false // the caller keeps m
	}
	o.unref()
	return true
}

// outMessage is a message from the backend on its way to the connections
// that took it. The first connection that writes it lets the backend forget
// it; if every one of them drops it unwritten (they closed first), it goes
// back to the receive loop.
type outMessage struct {
	s       *Server
	m       client.Message
	refs    atomic.Int32 // the queues holding it, plus broadcast while it runs
	written atomic.Bool
	forget  sync.Once
}

// wrote records that a connection wrote the message. The writer calls it
// before it lets go of its reference.
func (o *outMessage) wrote() {
	o.written.Store(true)
	o.forget.Do(func() { o.s.cfg.Backend.Forget(o.m) })
}

// unref lets go of one reference: a queue's, once its connection wrote the
// message or dropped it, or broadcast's.
func (o *outMessage) unref() {
	if o.refs.Add(-1) == 0 && !o.written.Load() {
		o.s.giveBack(o.m)
	}
}

// giveBack queues m for the receive loop ahead of what the backend holds,
// and wakes the loop if it waits on the backend.
func (s *Server) giveBack(m client.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.returned = append(s.returned, m)
	if s.recvCancel != nil {
		s.recvCancel()
	}
}

// takeReturned takes the oldest message given back, if any.
func (s *Server) takeReturned() *client.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.returned) == 0 {
		return nil
	}
	m := s.returned[0]
	s.returned = s.returned[1:]
	return &m
}

// setReceiveCancel records how to wake the receive loop from the backend
// (nil once it is back). A message given back meanwhile wakes it at once.
func (s *Server) setReceiveCancel(cancel context.CancelFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cancel != nil && len(s.returned) > 0 {
		cancel()
		return
	}
	s.recvCancel = cancel
}

// unsent counts the messages taken from the backend that no application
// got: held, and those given back.
func (s *Server) unsent(held *client.Message) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.returned)
	if held != nil {
		n++
	}
	return n
}
