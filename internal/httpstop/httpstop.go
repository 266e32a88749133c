// Package httpstop stops an http.Server gracefully without waiting on
// connections that carry no request.
//
// http.Server.Shutdown waits for every connection to go idle, and it counts
// a connection that has been accepted but has not sent a request yet as
// busy for its first five seconds. HTTP clients open such connections all
// the time (a transport dials a spare while another request is under way),
// so a plain Shutdown often takes five seconds, or runs out its context and
// reports a timeout, with no request in flight at all. A connection with no
// request has nothing to finish; Server.Shutdown here closes it.
package httpstop

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"
)

// pollInterval is how often Shutdown closes newly accepted connections
// while it waits.
const pollInterval = 20 * time.Millisecond

// Server wraps an http.Server to track its connections that have not sent
// a request yet.
type Server struct {
	*http.Server

	mu    sync.Mutex
	fresh map[net.Conn]struct{}

	// stopping is closed once net/http has begun to shut down: listeners
	// closed, and a request read from now on dropped by net/http itself.
	stopping     chan struct{}
	stoppingOnce sync.Once
}

// Wrap tracks srv's connections by setting its ConnState hook (a hook
// already set is still called). Call it before serving.
func Wrap(srv *http.Server) *Server {
	s := &Server{Server: srv, fresh: make(map[net.Conn]struct{}), stopping: make(chan struct{})}
	srv.RegisterOnShutdown(func() { s.stoppingOnce.Do(func() { close(s.stopping) }) })
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, state http.ConnState) {
		s.track(c, state)
		if prev != nil {
			prev(c, state)
		}
	}
	return s
}

// Shutdown is http.Server.Shutdown that closes the connections which have
// not sent a request instead of waiting for them. Requests in flight still
// finish, until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.Server.Shutdown(ctx) }()
	// Close nothing before net/http is shutting down: until then a
	// connection that has just sent its request still counts as new, and
	// its request would run with nobody to answer. A connection accepted
	// just before the listeners closed shows up a moment later, so keep
	// closing.
	select {
	case err := <-done:
		return err
	case <-s.stopping:
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	s.closeFresh()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			s.closeFresh()
		}
	}
}

func (s *Server) track(c net.Conn, state http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if state == http.StateNew {
		s.fresh[c] = struct{}{}
	} else {
		delete(s.fresh, c)
	}
}

// Fresh is how many connections have been accepted and sent no request yet.
func (s *Server) Fresh() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.fresh)
}

func (s *Server) closeFresh() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.fresh {
		c.Close()
		delete(s.fresh, c)
	}
}
