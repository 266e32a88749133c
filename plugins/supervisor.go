package plugins

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"

	"github.com/peapod-mixnet/peapod/handlers"
	pluginpb "github.com/peapod-mixnet/peapod/plugins/proto"
)

// Defaults for the zero fields of a SupervisorConfig.
const (
	DefaultMinBackoff   = 100 * time.Millisecond
	DefaultMaxBackoff   = 10 * time.Second
	DefaultStableAfter  = time.Minute
	DefaultStartTimeout = 10 * time.Second
	DefaultMaxReplySize = 1 << 20
)

// SupervisorConfig configures a Supervisor. Zero durations and sizes take
// the defaults above; negative ones are an error.
type SupervisorConfig struct {
	// Dir is the plugins folder: every regular executable file in it (or
	// symbolic link to one) is a plugin, named after the file. Hidden files
	// (starting with '.') and folders are ignored; other files that are not
	// executable are reported, listed as skipped, and otherwise ignored.
	// Empty means no folder.
	Dir string
	// Paths are further plugin executables, each named after its file name.
	// Unlike a bad file in Dir, a path here that is not a regular
	// executable file makes Start fail.
	Paths []string
	// DataDir holds the plugins' data: plugin NAME runs in its own working
	// directory DataDir/NAME (created 0700 if missing), whose path it also
	// gets in the environment variable DataDirEnv. Required.
	DataDir string
	// Logger receives the supervisor's events, go-plugin's own log and
	// every line the plugins write to standard output or error, each with
	// the field plugin=NAME.
	Logger zerolog.Logger
	// MinBackoff and MaxBackoff bound the delay before restarting a plugin
	// that died: the first restart waits MinBackoff, each further
	// consecutive one twice as long as the one before, up to MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// StableAfter is how long a plugin must have stayed up for the backoff
	// to start again from MinBackoff when it dies.
	StableAfter time.Duration
	// StartTimeout bounds a plugin's start: the handshake, and then its
	// answer to Describe.
	StartTimeout time.Duration
	// MaxReplySize is the largest reply, in bytes, the host accepts from a
	// plugin; a longer one fails with handlers.CodeTooLarge.
	MaxReplySize int
	// Registerer, if not nil, gets the counter peapod_plugin_restarts_total
	// (label plugin).
	Registerer prometheus.Registerer
}

// PluginStatus describes one plugin, for health checks.
type PluginStatus struct {
	// Name is the plugin's name, the base name of its executable.
	Name string
	// Path is the plugin's executable.
	Path string
	// Services lists the services registered for the plugin, sorted.
	Services []string
	// Up reports whether the plugin is running and serving.
	Up bool
	// Restarts counts the times the supervisor started the plugin again
	// after it died, successful or not.
	Restarts int
	// PID is the plugin's process id while it is up, else 0.
	PID int
	// Skipped reports a plugin that the supervisor gave up on at Start (not
	// executable, failed handshake, bad Describe answer): it is not run.
	Skipped bool
	// LastError says why the plugin last died, failed to start or was
	// skipped; empty if it never did.
	LastError string
}

// Supervisor runs a set of plugins, routes requests to their services, and
// restarts them when they die.
//
// Use NewSupervisor, then Start once; Handler then serves requests for the
// plugins' services until Close. A plugin that dies (crash, exit, killed)
// makes the requests in flight to it, and new requests for its services,
// fail at once with handlers.CodeHandlerFailed while the supervisor restarts
// it with exponential backoff; nothing a plugin does takes the host down.
// All methods are safe for concurrent use.
type Supervisor struct {
	cfg      SupervisorConfig
	log      zerolog.Logger
	router   handlers.Router
	restarts *prometheus.CounterVec // nil without a Registerer

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // Start and the supervising goroutines

	mu      sync.Mutex
	started bool
	closed  bool
	plugins []*managed // sorted by name

	regMu sync.Mutex
	owner map[string]*managed // service name → the plugin it is registered for
}

// NewSupervisor checks cfg and applies its defaults. It starts nothing.
func NewSupervisor(cfg SupervisorConfig) (*Supervisor, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("plugins: SupervisorConfig.DataDir is required")
	}
	var err error
	if cfg.DataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("plugins: data folder: %w", err)
	}
	if cfg.Dir != "" {
		if cfg.Dir, err = filepath.Abs(cfg.Dir); err != nil {
			return nil, fmt.Errorf("plugins: plugins folder: %w", err)
		}
	}
	paths := make([]string, len(cfg.Paths))
	for i, p := range cfg.Paths {
		if paths[i], err = filepath.Abs(p); err != nil {
			return nil, fmt.Errorf("plugins: plugin path %q: %w", p, err)
		}
	}
	cfg.Paths = paths
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"MinBackoff", &cfg.MinBackoff, DefaultMinBackoff},
		{"MaxBackoff", &cfg.MaxBackoff, DefaultMaxBackoff},
		{"StableAfter", &cfg.StableAfter, DefaultStableAfter},
		{"StartTimeout", &cfg.StartTimeout, DefaultStartTimeout},
	} {
		if *d.v < 0 {
			return nil, fmt.Errorf("plugins: SupervisorConfig.%s is negative", d.name)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		return nil, errors.New("plugins: SupervisorConfig.MaxBackoff is less than MinBackoff")
	}
	if cfg.MaxReplySize < 0 {
		return nil, errors.New("plugins: SupervisorConfig.MaxReplySize is negative")
	}
	if cfg.MaxReplySize == 0 {
		cfg.MaxReplySize = DefaultMaxReplySize
	}

	s := &Supervisor{cfg: cfg, log: cfg.Logger, owner: make(map[string]*managed)}
	if cfg.Registerer != nil {
		s.restarts = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peapod_plugin_restarts_total",
			Help: "Times a plugin was started again after it died.",
		}, []string{"plugin"})
		if err := cfg.Registerer.Register(s.restarts); err != nil {
			return nil, fmt.Errorf("plugins: register metrics: %w", err)
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Handler returns the handler that dispatches requests to the plugins'
// services, failing with handlers.CodeUnknownService for other names.
func (s *Supervisor) Handler() handlers.Handler { return &s.router }

// Services lists the services registered for the plugins, sorted by name.
func (s *Supervisor) Services() []handlers.ServiceInfo { return s.router.Services() }

// Status describes every plugin found, sorted by name.
func (s *Supervisor) Status() []PluginStatus {
	s.mu.Lock()
	plugins := s.plugins
	s.mu.Unlock()
	out := make([]PluginStatus, 0, len(plugins))
	for _, p := range plugins {
		out = append(out, p.status())
	}
	return out
}

// Start finds the plugins, starts them all, checks their handshake, asks
// each for its services and registers them, then supervises the plugins
// until Close. ctx bounds only the starting.
//
// A plugin that cannot be started, fails the handshake or answers Describe
// badly is logged, listed as skipped in Status, and not run; the others are
// not affected. A service already registered for another plugin (in name
// order at Start) is not registered for the second one, which is logged.
// Start fails only if it was called before, if the supervisor is closed, or
// for errors in the configuration: an unreadable Dir, a Paths entry that is
// not a regular executable file, an invalid plugin name (a name must not
// contain a path separator or start with a dot), or two plugins of the same
// name.
func (s *Supervisor) Start(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return errors.New("plugins: supervisor is closed")
	case s.started:
		s.mu.Unlock()
		return errors.New("plugins: supervisor already started")
	}
	s.started = true
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	plugins, err := s.discover()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.plugins = plugins
	s.mu.Unlock()
	if s.restarts != nil {
		// Every plugin's counter exists from the start, at 0, so that a
		// rate or an alert on it has a series before the first restart.
		for _, p := range plugins {
			s.restarts.WithLabelValues(p.name)
		}
	}

	startCtx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()

	insts := make([]*instance, len(plugins))
	errs := make([]error, len(plugins))
	var wg sync.WaitGroup
	for i, p := range plugins {
		if p.skipped {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			insts[i], errs[i] = p.start(startCtx)
		}()
	}
	wg.Wait()

	var running []*managed
	for i, p := range plugins {
		switch {
		case p.skipped:
			continue
		case errs[i] != nil:
			p.skip(errs[i])
			p.log.Error().Err(errs[i]).Str("path", p.path).Msg("plugin failed to start; skipped")
			continue
		}
		p.cur.Store(insts[i])
		s.register(p, insts[i].services)
		p.log.Info().Int("pid", insts[i].proc.PID()).Strs("services", serviceNames(insts[i].services)).Msg("plugin started")
		running = append(running, p)
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		for _, p := range running {
			p.cur.Swap(nil).stop()
		}
		return errors.New("plugins: supervisor closed during Start")
	}
	for _, p := range running {
		s.wg.Add(1)
		go p.supervise(p.cur.Load())
	}
	s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("plugins: start cancelled: %w", err)
	}
	return nil
}

// Close stops every plugin and returns when their processes are gone.
// Requests for their services then fail with handlers.CodeHandlerFailed.
// Close may be called more than once.
func (s *Supervisor) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	if s.restarts != nil {
		s.cfg.Registerer.Unregister(s.restarts)
	}
	return nil
}

// discover lists the plugins of the configuration, sorted by name.
func (s *Supervisor) discover() ([]*managed, error) {
	byName := make(map[string]*managed)
	add := func(name, path string) (*managed, error) {
		if err := checkPluginName(name); err != nil {
			return nil, err
		}
		if other, ok := byName[name]; ok {
			return nil, fmt.Errorf("plugins: two plugins named %q: %s and %s", name, other.path, path)
		}
		p := &managed{
			s:          s,
			name:       name,
			path:       path,
			dataDir:    filepath.Join(s.cfg.DataDir, name),
			log:        s.log.With().Str("plugin", name).Logger(),
			registered: make(map[string]string),
		}
		byName[name] = p
		return p, nil
	}

	if s.cfg.Dir != "" {
		entries, err := os.ReadDir(s.cfg.Dir)
		if err != nil {
			return nil, fmt.Errorf("plugins: plugins folder: %w", err)
		}
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, ".") {
				continue
			}
			path := filepath.Join(s.cfg.Dir, name)
			fi, err := os.Stat(path)
			if err == nil && fi.IsDir() {
				continue
			}
			p, aerr := add(name, path)
			if aerr != nil {
				s.log.Error().Err(aerr).Str("path", path).Msg("plugin skipped")
				continue
			}
			if err == nil {
				err = checkExecutable(fi)
			}
			if err != nil {
				p.skip(err)
				p.log.Error().Err(err).Str("path", path).Msg("plugin skipped")
			}
		}
	}
	for _, path := range s.cfg.Paths {
		fi, err := os.Stat(path)
		if err == nil {
			err = checkExecutable(fi)
		}
		if err != nil {
			return nil, fmt.Errorf("plugins: plugin %s: %w", path, err)
		}
		if _, err := add(filepath.Base(path), path); err != nil {
			return nil, err
		}
	}

	out := make([]*managed, 0, len(byName))
	for _, p := range byName {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// checkPluginName rejects names that could escape the data folder or hide.
func checkPluginName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("plugins: invalid plugin name %q", name)
	case strings.HasPrefix(name, "."):
		return fmt.Errorf("plugins: plugin name %q starts with a dot", name)
	case strings.ContainsAny(name, `/\`) || strings.ContainsRune(name, filepath.Separator):
		return fmt.Errorf("plugins: plugin name %q contains a path separator", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("plugins: plugin name %q contains a control character", name)
		}
	}
	return nil
}

// checkExecutable accepts a regular file with an execute bit set.
func checkExecutable(fi os.FileInfo) error {
	switch {
	case !fi.Mode().IsRegular():
		return errors.New("plugins: not a regular file")
	case fi.Mode().Perm()&0o111 == 0:
		return errors.New("plugins: not executable")
	}
	return nil
}

// register makes the router's services for p match services.
func (s *Supervisor) register(p *managed, services []handlers.ServiceInfo) {
	s.regMu.Lock()
	defer s.regMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	want := make(map[string]string, len(services))
	for _, svc := range services {
		want[svc.Name] = svc.Description
	}
	for name, desc := range p.registered {
		if d, ok := want[name]; !ok || d != desc {
			s.router.Remove(name)
			delete(s.owner, name)
			delete(p.registered, name)
		}
	}
	for _, svc := range services {
		if _, ok := p.registered[svc.Name]; ok {
			continue
		}
		if other, ok := s.owner[svc.Name]; ok {
			p.log.Error().Str("service", svc.Name).Str("offered_by", other.name).
				Msg("service already offered by another plugin; not registered")
			continue
		}
		if err := s.router.Register(svc, p); err != nil {
			p.log.Error().Err(err).Str("service", svc.Name).Msg("service not registered")
			continue
		}
		s.owner[svc.Name] = p
		p.registered[svc.Name] = svc.Description
	}
}

// managed is one plugin under supervision. It is the handler registered
// for the plugin's services.
type managed struct {
	s       *Supervisor
	name    string
	path    string
	dataDir string
	log     zerolog.Logger
	cur     atomic.Pointer[instance] // nil while the plugin is down

	mu         sync.Mutex
	registered map[string]string // service → description, registered for this plugin
	restarts   int
	skipped    bool
	lastErr    string
}

var _ handlers.Handler = (*managed)(nil)

// Handle forwards req to the plugin, or fails at once if it is down.
func (p *managed) Handle(ctx context.Context, req *handlers.Request) ([]byte, error) {
	inst := p.cur.Load()
	if inst == nil {
		return nil, handlers.Errorf(handlers.CodeHandlerFailed, "service temporarily unavailable")
	}
	return inst.dispatch.call(ctx, req)
}

func (p *managed) skip(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.skipped = true
	p.lastErr = err.Error()
}

func (p *managed) status() PluginStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := PluginStatus{
		Name:      p.name,
		Path:      p.path,
		Restarts:  p.restarts,
		Skipped:   p.skipped,
		LastError: p.lastErr,
	}
	for name := range p.registered {
		st.Services = append(st.Services, name)
	}
	sort.Strings(st.Services)
	if inst := p.cur.Load(); inst != nil {
		st.Up = true
		st.PID = inst.proc.PID()
	}
	return st
}

// stopGrace is how long a plugin may take to exit when asked before its
// process group is killed, whatever go-plugin is still waiting for (a
// stopped or wedged plugin never answers go-plugin's shutdown call).
const stopGrace = 5 * time.Second

// instance is one running process of a plugin.
type instance struct {
	client   *goplugin.Client
	launched atomic.Pointer[process] // set as soon as the process is started
	proc     *process                // launched, once the start has succeeded
	dispatch *dispatcher             // set once the start has succeeded
	services []handlers.ServiceInfo
	started  time.Time
	stdout   *lineLogger // go-plugin's stdio stream of the plugin's os.Stdout
	stderr   *lineLogger // and of its os.Stderr
}

// stop fails the calls in flight, kills the process (gracefully if it
// cooperates) and waits for it.
func (in *instance) stop() {
	if in.dispatch != nil {
		in.dispatch.close()
	}
	if proc := in.launched.Load(); proc != nil {
		t := time.AfterFunc(stopGrace, func() { _ = proc.Kill(context.Background()) })
		defer t.Stop()
	}
	in.client.Kill()
	in.stdout.Flush()
	in.stderr.Flush()
}

// start runs the plugin once: handshake, connection, Describe.
func (p *managed) start(ctx context.Context) (_ *instance, err error) {
	if err := os.MkdirAll(p.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("plugins: data folder: %w", err)
	}
	inst := &instance{
		stdout: newLineLogger(p.log.With().Str("stream", "stdout").Logger()),
		stderr: newLineLogger(p.log.With().Str("stream", "stderr").Logger()),
	}
	inst.client = goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: Handshake,
		Plugins:         pluginSet(nil),
		RunnerFunc: func(_ hclog.Logger, spec *exec.Cmd, _ string) (runner.Runner, error) {
			cmd := exec.Command(p.path)
			cmd.Dir = p.dataDir
			cmd.Env = append([]string{
				DataDirEnv + "=" + p.dataDir,
				"PATH=" + os.Getenv("PATH"),
			}, spec.Env...) // go-plugin's: the cookie, protocol versions, socket folder
			proc := newProcess(cmd, p.log)
			inst.launched.Store(proc)
			return proc, nil
		},
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger:           newHCLogger(p.log),
		StartTimeout:     p.s.cfg.StartTimeout,
		SkipHostEnv:      true,
		SyncStdout:       inst.stdout,
		SyncStderr:       inst.stderr,
		GRPCDialOptions: []grpc.DialOption{
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(p.s.cfg.MaxReplySize + replyOverhead)),
			grpc.WithInitialWindowSize(flowWindow),
			grpc.WithInitialConnWindowSize(flowWindow),
		},
	})
	// go-plugin bounds the wait for the handshake line but not the
	// connection that follows; the watchdog bounds the whole start.
	watchdog := time.AfterFunc(p.s.cfg.StartTimeout, func() {
		if proc := inst.launched.Load(); proc != nil {
			_ = proc.Kill(context.Background())
		}
	})
	defer func() {
		if fired := !watchdog.Stop(); fired {
			// The process is, or is about to be, killed.
			if err == nil {
				err = errors.New("killed")
			}
			err = fmt.Errorf("plugins: start took longer than %v: %w", p.s.cfg.StartTimeout, err)
		}
		if err != nil {
			inst.stop()
		}
	}()

	cp, err := connect(inst.client)
	if err != nil {
		if proc := inst.launched.Load(); proc != nil {
			return nil, proc.startFailure(err)
		}
		return nil, err
	}
	raw, err := cp.Dispense(PluginName)
	if err != nil {
		return nil, fmt.Errorf("plugins: dispense: %w", err)
	}
	hc, ok := raw.(pluginpb.HandlerClient)
	if !ok {
		return nil, fmt.Errorf("plugins: dispense returned %T", raw)
	}
	dctx, cancel := context.WithTimeout(ctx, p.s.cfg.StartTimeout)
	defer cancel()
	services, err := describe(dctx, hc, p.s.cfg.MaxReplySize)
	if err != nil {
		return nil, err
	}
	if len(services) == 0 {
		p.log.Warn().Msg("plugin offers no services")
	}
	inst.proc = inst.launched.Load()
	inst.dispatch = newDispatcher(hc, p.log, p.s.cfg.MaxReplySize)
	inst.services = services
	inst.started = time.Now()
	return inst, nil
}

// connect does the handshake and connects. go-plugin's client code is not
// written for hostile plugins, so a panic in it is turned into an error.
func connect(c *goplugin.Client) (cp goplugin.ClientProtocol, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("plugins: handshake: go-plugin panicked: %v", v)
		}
	}()
	cp, err = c.Client()
	if err != nil {
		return nil, fmt.Errorf("plugins: handshake: %w", err)
	}
	return cp, nil
}

// supervise watches the running instance inst, restarts the plugin when it
// dies, and stops it when the supervisor closes.
func (p *managed) supervise(inst *instance) {
	defer p.s.wg.Done()
	cfg := &p.s.cfg
	backoff := cfg.MinBackoff
	for {
		select {
		case <-inst.proc.dead:
		case <-p.s.ctx.Done():
			p.cur.Store(nil)
			inst.stop()
			return
		}
		p.cur.Store(nil)
		exitErr := inst.proc.exitError()
		uptime := time.Since(inst.started)
		inst.stop()
		p.setLastError(exitErr)
		if uptime >= cfg.StableAfter {
			backoff = cfg.MinBackoff
		}
		p.log.Warn().Err(exitErr).Dur("uptime", uptime).Dur("restart_in", backoff).Msg("plugin died")

		for {
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-p.s.ctx.Done():
				t.Stop()
				return
			}
			backoff = min(2*backoff, cfg.MaxBackoff)
			p.mu.Lock()
			p.restarts++
			p.mu.Unlock()
			if p.s.restarts != nil {
				p.s.restarts.WithLabelValues(p.name).Inc()
			}
			next, err := p.start(p.s.ctx)
			if err == nil {
				inst = next
				break
			}
			if p.s.ctx.Err() != nil {
				return
			}
			p.setLastError(err)
			p.log.Error().Err(err).Dur("restart_in", backoff).Msg("plugin restart failed")
		}
		p.cur.Store(inst)
		p.s.register(p, inst.services)
		p.log.Info().Int("pid", inst.proc.PID()).Strs("services", serviceNames(inst.services)).Msg("plugin restarted")
	}
}

func (p *managed) setLastError(err error) {
	if err == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastErr = err.Error()
}

func serviceNames(services []handlers.ServiceInfo) []string {
	names := make([]string, len(services))
	for i, s := range services {
		names[i] = s.Name
	}
	return names
}
