package directory

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/internal/httpstop"
)

// Config configures a [Server]. Zero values take the documented defaults.
type Config struct {
	// DataDir holds the database, directory.db; it is created (0700) when
	// missing. Required.
	DataDir string
	// TTL is how long an entry stays in the topology without being
	// refreshed. Default DefaultTTL.
	TTL time.Duration
	// MaxNodes bounds the identities the server holds, counting stale and
	// deregistered ones until they are forgotten. Default DefaultMaxNodes.
	MaxNodes int
	// MaxClockSkew is how far a request's timestamp may be from the
	// server's clock. Default DefaultMaxClockSkew.
	MaxClockSkew time.Duration
	// Logger receives the server's logs; the zero value discards them.
	Logger zerolog.Logger
	// Now is the server's clock, for tests. Default time.Now.
	Now func() time.Time
	// Params, when set, is served with the topology: the parameters the
	// network advertises to its clients (for example the mean mix delay
	// `mixnet local --mix-delay` sets).
	Params *Params
	// Schedule is the network's timetable of epochs and key rotations,
	// served with every topology. Zero fields take DefaultSchedule's.
	Schedule Schedule
	// AllowList, when set, is the set of identities the server admits: a
	// registration by any other identity is refused (403) and a listed
	// node taken off the list leaves the topology. Nil admits every
	// identity (open mode, for local and test networks).
	AllowList *AllowList
	// RegisterRate is the signed requests a second accepted from one
	// source address, and RegisterRateTotal from all of them, each with a
	// burst of twice as many; past either a request is refused (429).
	// Defaults DefaultRegisterRate and DefaultRegisterRateTotal.
	RegisterRate      float64
	RegisterRateTotal float64
	// Authority, when set, makes the server a directory authority: it signs
	// its view of the topology, exchanges signatures with its peers and
	// publishes a signed [Document] (see authority.go).
	Authority *AuthorityConfig
}

// applyDefaults fills in zero fields and then checks the result.
func (c *Config) applyDefaults() error {
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.MaxNodes == 0 {
		c.MaxNodes = DefaultMaxNodes
	}
	if c.MaxClockSkew == 0 {
		c.MaxClockSkew = DefaultMaxClockSkew
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	def := DefaultSchedule()
	if c.Schedule.Genesis.IsZero() {
		c.Schedule.Genesis = def.Genesis
	}
	if c.Schedule.EpochLength == 0 {
		c.Schedule.EpochLength = def.EpochLength
	}
	if c.Schedule.RotationEpochs == 0 {
		c.Schedule.RotationEpochs = def.RotationEpochs
	}
	if c.RegisterRate == 0 {
		c.RegisterRate = DefaultRegisterRate
	}
	if c.RegisterRateTotal == 0 {
		c.RegisterRateTotal = DefaultRegisterRateTotal
	}
	if c.Authority != nil {
		if err := c.Authority.applyDefaults(); err != nil {
			return err
		}
	}
	if err := c.Schedule.Validate(); err != nil {
		return fmt.Errorf("directory: Config.Schedule: %s", reason(err))
	}
	switch {
	case c.DataDir == "":
		return errors.New("directory: Config.DataDir is required")
	case c.TTL < 0:
		return fmt.Errorf("directory: Config.TTL %s is negative", c.TTL)
	case c.MaxNodes < 0:
		return fmt.Errorf("directory: Config.MaxNodes %d is negative", c.MaxNodes)
	case c.MaxClockSkew < 0:
		return fmt.Errorf("directory: Config.MaxClockSkew %s is negative", c.MaxClockSkew)
	case !(c.RegisterRate > 0) || !(c.RegisterRateTotal > 0):
		return fmt.Errorf("directory: Config.RegisterRate %v and RegisterRateTotal %v must be positive", c.RegisterRate, c.RegisterRateTotal)
	case c.Params != nil && c.Params.MeanMixDelay < 0:
		return fmt.Errorf("directory: Config.Params.MeanMixDelay %d is negative", c.Params.MeanMixDelay)
	}
	return nil
}

// HTTP server limits.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 16 << 10
	// shutdownTimeout bounds how long Close waits for requests in flight.
	shutdownTimeout = 5 * time.Second
)

// Server is a directory server. Create it with [New], serve it with
// [Server.Serve] (or mount [Server.Handler] in a server of your own) and stop
// it with [Server.Close]. Its methods are safe for concurrent use.
type Server struct {
	cfg     Config
	log     zerolog.Logger
	store   *store
	metrics *metrics
	limiter *limiter
	auth    *authority // nil unless Config.Authority is set
	handler http.Handler
	http    *httpstop.Server

	// writeMu serialises changes (check, persist, apply). nodes changes only
	// with both writeMu and mu held, so a holder of writeMu reads it freely.
	writeMu sync.Mutex
	// mu guards nodes, keyed by base58 identity.
	mu    sync.RWMutex
	nodes map[string]record

	stop      chan struct{} // closed by Close to end the sweeper
	sweeperWG sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New opens (or creates) the database in cfg.DataDir, loads the entries it
// holds with their last-seen times, and starts a sweeper that deletes
// entries that have been stale long enough.
func New(cfg Config) (*Server, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	st, err := openStore(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With().Str("component", "directory").Logger()
	nodes, err := st.load(log)
	if err != nil {
		st.close()
		return nil, err
	}
	s := &Server{
		cfg:   cfg,
		log:   log,
		store: st,
		nodes: nodes,
		stop:  make(chan struct{}),
	}
	s.limiter = newLimiter(cfg.RegisterRate, cfg.RegisterRateTotal)
	s.metrics = newMetrics(s.countListed, s.countTracked)
	if cfg.Authority != nil {
		s.auth = newAuthority(s, *cfg.Authority)
	}
	s.handler = s.routes()
	s.http = httpstop.Wrap(&http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          stdlog.New(log, "", 0),
	})
	s.sweeperWG.Add(1)
	go s.sweeper()
	if s.auth != nil {
		s.sweeperWG.Add(1)
		go s.auth.run(s.stop, &s.sweeperWG)
	}
	log.Info().Str("data_dir", cfg.DataDir).Int("entries", len(nodes)).
		Dur("ttl", cfg.TTL).Msg("directory opened")
	return s, nil
}

// routes builds the HTTP handler.
func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Get(PathTopology, s.handleTopology)
	if s.auth != nil {
		r.Get(PathDocument, s.auth.handleDocument)
		r.Get(PathVote, s.auth.handleVote)
	}
	r.Post(PathRegister, s.handleSigned(PathRegister))
	r.Post(PathDeregister, s.handleSigned(PathDeregister))
	r.Get(PathHealth, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, statusBody{Status: "ok"})
	})
	r.Method(http.MethodGet, PathMetrics, promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "no such endpoint"})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "method not allowed"})
	})
	return r
}

// Handler returns the server's HTTP handler, for mounting in a server of
// the caller's own; stop that server before calling Close.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve accepts HTTP connections on ln until Close. It returns nil after
// Close and any other error from the listener.
func (s *Server) Serve(ln net.Listener) error {
	s.log.Info().Str("addr", ln.Addr().String()).Msg("directory serving")
	err := s.http.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("directory: %w", err)
}

// Close stops serving: it lets requests in flight finish (for a few seconds
// at most), stops the sweeper and closes the database. It returns once all
// of the server's goroutines have ended. Later calls return the same error.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := s.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("directory: shutting down: %w", err))
			s.http.Close()
		}
		close(s.stop)
		s.sweeperWG.Wait()
		errs = append(errs, s.store.close())
		s.closeErr = errors.Join(errs...)
		s.log.Info().Msg("directory closed")
	})
	return s.closeErr
}

// Topology returns the nodes listed now, in the order the server serves
// them: those registered within the TTL that hold a Sphinx key for the
// current rotation, each with the keys it holds now (the current one, and
// the next one once it is announced).
func (s *Server) Topology() Topology {
	now := s.cfg.Now()
	sched := s.cfg.Schedule
	epoch := sched.Epoch(now)
	t := Topology{Mixnodes: []Mixnode{}, Gateways: []Gateway{}, Epoch: sched.Info(epoch)}
	if s.cfg.Params != nil {
		p := *s.cfg.Params
		t.Params = &p
	}
	s.mu.RLock()
	for _, r := range s.nodes {
		if !s.listed(r, now) || !s.admits(r.desc.Identity) {
			continue
		}
		d := r.desc
		keys := servedKeys(d.SphinxKeys, sched, now)
		if keys == nil {
			continue // no key for the current rotation: no packet can be built for it
		}
		switch d.Role {
		case RoleMixnode:
			t.Mixnodes = append(t.Mixnodes, Mixnode{Layer: d.Layer, Address: d.Address, Identity: d.Identity, SphinxKeys: keys, NoiseKey: d.NoiseKey})
		case RoleGateway:
			t.Gateways = append(t.Gateways, Gateway{Address: d.Address, ClientAddress: d.ClientAddress, Identity: d.Identity, SphinxKeys: keys, NoiseKey: d.NoiseKey})
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(t.Mixnodes, func(a, b Mixnode) int {
		return cmp.Or(cmp.Compare(a.Layer, b.Layer), cmp.Compare(a.Identity, b.Identity))
	})
	slices.SortFunc(t.Gateways, func(a, b Gateway) int { return cmp.Compare(a.Identity, b.Identity) })
	return t
}

// servedKeys returns the keys of list a topology made at t lists: the
// current rotation's and the next one's once announced (not the previous
// one in its grace epoch: no new packet is built for it). It returns nil
// when list has no key for the current rotation.
func servedKeys(list []SphinxKey, sched Schedule, t time.Time) []SphinxKey {
	cur := sched.RotationAt(t)
	var out []SphinxKey
	for _, k := range list {
		if k.Rotation == cur || (k.Rotation == cur+1 && sched.Holds(k.Rotation, t)) {
			out = append(out, k)
		}
	}
	if len(out) == 0 || out[0].Rotation != cur {
		return nil
	}
	return out
}

// Schedule is the network's timetable the server serves.
func (s *Server) Schedule() Schedule { return s.cfg.Schedule }

func (s *Server) handleTopology(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-cache")
	writeJSON(w, http.StatusOK, s.Topology())
}

// listed reports whether r belongs in the topology at time now: registered
// and refreshed within the TTL.
func (s *Server) listed(r record, now time.Time) bool {
	return r.desc != nil && now.Sub(r.lastSeen) <= s.cfg.TTL
}

// countListed returns the number of nodes of role listed now.
func (s *Server) countListed(role Role) int {
	now := s.cfg.Now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, r := range s.nodes {
		if s.listed(r, now) && r.desc.Role == role {
			n++
		}
	}
	return n
}

// countTracked returns the number of identities held.
func (s *Server) countTracked() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.nodes)
}

// minSweepInterval keeps a tiny TTL from turning the sweeper into a busy loop.
const minSweepInterval = time.Second

// sweeper deletes forgettable records every TTL until Close.
func (s *Server) sweeper() {
	defer s.sweeperWG.Done()
	t := time.NewTicker(max(s.cfg.TTL, minSweepInterval))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.sweep(); err != nil {
				s.log.Error().Err(err).Msg("sweeping stale entries")
			}
		}
	}
}

// statusBody is the body of a successful response without data.
type statusBody struct {
	Status string `json:"status"`
}

// errorBody is the body of every error response.
type errorBody struct {
	Error string `json:"error"`
}

// writeJSON writes v as the JSON response with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}
