package directory

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
)

// rejection is a refused request: the HTTP status, the metric reason and
// the message for the caller.
type rejection struct {
	status int
	reason string
	err    error
}

func (r *rejection) Error() string { return r.err.Error() }

func reject(status int, reason string, err error) error {
	return &rejection{status: status, reason: reason, err: err}
}

// handleSigned serves a signed request to path: PathRegister or
// PathDeregister.
func (s *Server) handleSigned(path string) http.HandlerFunc {
	apply, request, done := s.register, "register", "registered"
	if path == PathDeregister {
		apply, request, done = s.deregister, "deregister", "deregistered"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		d, err := Descriptor{}, s.limiter.allow(r.RemoteAddr, s.cfg.Now())
		if err == nil {
			d, err = s.authenticate(w, r, path)
		}
		if err == nil {
			err = apply(d)
		}
		var rej *rejection
		switch {
		case errors.As(err, &rej):
			s.metrics.rejected.WithLabelValues(rej.reason).Inc()
			s.log.Debug().Str("request", request).Str("remote", r.RemoteAddr).
				Str("reason", rej.reason).Str("error", reason(rej)).Msg("request refused")
			writeJSON(w, rej.status, errorBody{Error: reason(rej)})
		case err != nil:
			s.log.Error().Err(err).Str("request", request).Str("identity", d.Identity).Msg("request failed")
			writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal error"})
		default:
			s.metrics.accepted.WithLabelValues(request).Inc()
			writeJSON(w, http.StatusOK, statusBody{Status: done})
		}
	}
}

// authenticate reads the request's descriptor and checks its fields and its
// signature over path.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, path string) (Descriptor, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxDescriptorSize))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return Descriptor{}, reject(http.StatusRequestEntityTooLarge, reasonTooLarge,
				fmt.Errorf("directory: request body is larger than %d bytes", MaxDescriptorSize))
		}
		return Descriptor{}, reject(http.StatusBadRequest, reasonMalformed,
			fmt.Errorf("directory: reading the request body: %w", err))
	}
	d, err := decodeDescriptor(body)
	if err != nil {
		return Descriptor{}, reject(http.StatusBadRequest, reasonMalformed, err)
	}
	if err := d.Validate(); err != nil {
		return Descriptor{}, reject(http.StatusBadRequest, reasonInvalid, err)
	}
	identity, err := parseIdentity(d.Identity)
	if err != nil { // Validate checked it already
		return Descriptor{}, reject(http.StatusBadRequest, reasonInvalid, err)
	}
	if !verify(identity, path, body, headerSignature(r.Header)) {
		return Descriptor{}, reject(http.StatusUnauthorized, reasonSignature, errSignature)
	}
	return d, nil
}

// register adds or refreshes the entry of an authenticated descriptor.
func (s *Server) register(d Descriptor) error {
	if !s.admits(d.Identity) {
		return reject(http.StatusForbidden, reasonNotAdmitted,
			fmt.Errorf("directory: identity %s is not on this directory's allow-list", d.Identity))
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	now := s.cfg.Now()
	old, known, err := s.checkFreshLocked(d, now)
	if err != nil {
		return err
	}
	if !known && len(s.nodes) >= s.cfg.MaxNodes {
		if err := s.pruneLocked(now); err != nil {
			return err
		}
		if len(s.nodes) >= s.cfg.MaxNodes {
			return reject(http.StatusTooManyRequests, reasonFull,
				fmt.Errorf("directory: the directory is full (%d nodes); try again later", s.cfg.MaxNodes))
		}
	}
	r := record{desc: &d, timestamp: d.Timestamp, lastSeen: now}
	if err := s.applyLocked(d.Identity, r); err != nil {
		return err
	}
	ev := s.log.Debug()
	msg := "node refreshed"
	switch {
	case !known || !s.listed(old, now):
		ev, msg = s.log.Info(), "node registered"
	case !sameNode(*old.desc, d):
		ev, msg = s.log.Info(), "node updated"
	}
	ev.Str("identity", d.Identity).Str("role", string(d.Role)).Int("layer", d.Layer).
		Str("address", d.Address).Msg(msg)
	return nil
}

// deregister removes the entry of an authenticated descriptor. The identity
// stays known, without an entry, until its timestamp is too old to pass the
// clock-skew check, so that no earlier registration can be replayed.
func (s *Server) deregister(d Descriptor) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	now := s.cfg.Now()
	_, known, err := s.checkFreshLocked(d, now)
	if err != nil || !known {
		return err // an unknown identity has nothing to remove or guard
	}
	if err := s.applyLocked(d.Identity, record{timestamp: d.Timestamp, lastSeen: now}); err != nil {
		return err
	}
	s.log.Info().Str("identity", d.Identity).Str("role", string(d.Role)).Msg("node deregistered")
	return nil
}

// checkFreshLocked refuses a descriptor whose timestamp is too far from now
// or not after the last one accepted for its identity, and returns the
// identity's record, if any.
func (s *Server) checkFreshLocked(d Descriptor, now time.Time) (record, bool, error) {
	if skew := now.Sub(time.Unix(0, d.Timestamp)); skew > s.cfg.MaxClockSkew || skew < -s.cfg.MaxClockSkew {
		return record{}, false, reject(http.StatusBadRequest, reasonClockSkew,
			fmt.Errorf("directory: timestamp is %s away from the directory's clock (at most %s allowed)",
				skew.Abs().Round(time.Millisecond), s.cfg.MaxClockSkew))
	}
	old, known := s.nodes[d.Identity]
	if known && d.Timestamp <= old.timestamp {
		return record{}, false, reject(http.StatusConflict, reasonReplay,
			errors.New("directory: timestamp is not after the last one accepted for this identity (replayed or reordered request)"))
	}
	return old, known, nil
}

// applyLocked persists r as the record of id, then makes it visible.
func (s *Server) applyLocked(id string, r record) error {
	if err := s.store.put(id, r); err != nil {
		return err
	}
	s.mu.Lock()
	s.nodes[id] = r
	s.mu.Unlock()
	return nil
}

// sameNode reports whether a and b describe the same node, timestamps aside.
func sameNode(a, b Descriptor) bool {
	return a.Role == b.Role && a.Layer == b.Layer && a.Address == b.Address &&
		a.ClientAddress == b.ClientAddress && a.Identity == b.Identity &&
		a.NoiseKey == b.NoiseKey && slices.Equal(a.SphinxKeys, b.SphinxKeys)
}

// sweep forgets every record that is neither listed nor guarding against
// replays, in the database and in memory.
func (s *Server) sweep() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.pruneLocked(s.cfg.Now())
}

// pruneLocked is sweep with writeMu held.
func (s *Server) pruneLocked(now time.Time) error {
	var gone []string
	for id, r := range s.nodes {
		if !s.listed(r, now) && now.Sub(time.Unix(0, r.timestamp)) > s.cfg.MaxClockSkew {
			gone = append(gone, id)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	if err := s.store.delete(gone); err != nil {
		return err
	}
	s.mu.Lock()
	for _, id := range gone {
		delete(s.nodes, id)
	}
	s.mu.Unlock()
	s.log.Info().Int("count", len(gone)).Msg("forgot stale and deregistered nodes")
	return nil
}
