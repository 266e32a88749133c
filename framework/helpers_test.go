package framework

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/framework/descriptor"
	"github.com/peapod-mixnet/peapod/framework/envelope"
	"github.com/peapod-mixnet/peapod/handlers"
	"github.com/peapod-mixnet/peapod/internal/testbuild"
)

// testTimeout bounds every wait of the tests for something that should
// happen quickly.
const testTimeout = 20 * time.Second

// newAddress returns a valid address with fresh keys, and the identity
// key behind it.
func newAddress(tb testing.TB) (address.Address, ed25519.PrivateKey) {
	tb.Helper()
	var a address.Address
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	copy(a.Identity[:], pub)
	_, _ = rand.Read(a.Encryption[:])
	gw, _, _ := ed25519.GenerateKey(rand.Reader)
	copy(a.Gateway[:], gw)
	if err := a.Validate(); err != nil {
		tb.Fatal(err)
	}
	return a, priv
}

func newTag(tb testing.TB) address.SenderTag {
	tag, err := address.NewSenderTag(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return tag
}

// memReply is a reply a memTransport was asked to send.
type memReply struct {
	tag  address.SenderTag
	data []byte
}

// memTransport is an in-memory Transport: tests push messages into in and
// read replies from out. With a signer it is an AddressSigner.
type memTransport struct {
	addr      address.Address
	signer    crypto.Signer
	in        chan Message
	out       chan memReply
	connected atomic.Bool
	closed    chan struct{}
	closeOnce sync.Once
	onClose   func() // called at Close, before closing
	replyErr  atomic.Pointer[error]
}

func newMemTransport(tb testing.TB) *memTransport {
	addr, _ := newAddress(tb)
	t := &memTransport{addr: addr, in: make(chan Message), out: make(chan memReply, 1024), closed: make(chan struct{})}
	t.connected.Store(true)
	return t
}

// memSigningTransport is a memTransport that lends its identity key.
type memSigningTransport struct{ *memTransport }

func (t memSigningTransport) AddressSigner() crypto.Signer { return t.signer }

var (
	_ Transport     = (*memTransport)(nil)
	_ AddressSigner = memSigningTransport{}
)

func newMemSigningTransport(tb testing.TB) memSigningTransport {
	t := newMemTransport(tb)
	var key ed25519.PrivateKey
	t.addr, key = newAddress(tb)
	t.signer = key
	return memSigningTransport{t}
}

func (t *memTransport) Start(ctx context.Context) error { return nil }
func (t *memTransport) Address() address.Address        { return t.addr }
func (t *memTransport) Connected() bool                 { return t.connected.Load() }

func (t *memTransport) Receive(ctx context.Context) (Message, error) {
	select {
	case m := <-t.in:
		return m, nil
	case <-ctx.Done():
		return Message{}, ctx.Err()
	case <-t.closed:
		return Message{}, ErrTransportClosed
	}
}

func (t *memTransport) Reply(ctx context.Context, tag address.SenderTag, data []byte) error {
	if p := t.replyErr.Load(); p != nil {
		return *p
	}
	select {
	case <-t.closed:
		return ErrTransportClosed
	default:
	}
	select {
	case t.out <- memReply{tag: tag, data: bytes.Clone(data)}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *memTransport) Close() error {
	t.closeOnce.Do(func() {
		if t.onClose != nil {
			t.onClose()
		}
		close(t.closed)
	})
	return nil
}

// push delivers a message to the host, failing the test if the host does
// not take it in time.
func (t *memTransport) push(tb testing.TB, data []byte, tag *address.SenderTag) {
	tb.Helper()
	select {
	case t.in <- Message{Data: data, SenderTag: tag}:
	case <-time.After(testTimeout):
		tb.Fatal("the host did not read the message")
	}
}

// reply waits for the next reply.
func (t *memTransport) reply(tb testing.TB) memReply {
	tb.Helper()
	select {
	case r := <-t.out:
		return r
	case <-time.After(testTimeout):
		tb.Fatal("no reply")
		return memReply{}
	}
}

// noReply checks that no reply comes within d (used only where the
// absence of an event is the point: there is no signal for "never").
func (t *memTransport) noReply(tb testing.TB, d time.Duration) {
	tb.Helper()
	select {
	case r := <-t.out:
		tb.Fatalf("unexpected reply %s", r.data)
	case <-time.After(d):
	}
}

// request encodes a request envelope.
func request(tb testing.TB, id, service string, data []byte) []byte {
	tb.Helper()
	b, err := (&envelope.Request{ID: id, Service: service, Data: data}).AppendJSON(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// do sends a request from tag and returns its parsed reply.
func (t *memTransport) do(tb testing.TB, tag address.SenderTag, id, service string, data []byte) *envelope.Reply {
	tb.Helper()
	t.push(tb, request(tb, id, service, data), &tag)
	return t.parsedReply(tb, tag)
}

func (t *memTransport) parsedReply(tb testing.TB, tag address.SenderTag) *envelope.Reply {
	tb.Helper()
	r := t.reply(tb)
	if r.tag != tag {
		tb.Fatalf("reply went to tag %s, want %s", r.tag, tag)
	}
	rep, err := envelope.ParseReply(r.data)
	if err != nil {
		tb.Fatalf("reply %s: %v", r.data, err)
	}
	return rep
}

// wantError checks that rep is a failure with code.
func wantError(tb testing.TB, rep *envelope.Reply, code string) {
	tb.Helper()
	if rep.Err == nil {
		tb.Fatalf("reply %q succeeded, want error %s", rep.Data, code)
	}
	if rep.Err.Code != code {
		tb.Fatalf("error %s (%s), want %s", rep.Err.Code, rep.Err.Message, code)
	}
}

// wantOK checks that rep is a success with data.
func wantOK(tb testing.TB, rep *envelope.Reply, data string) {
	tb.Helper()
	if rep.Err != nil {
		tb.Fatalf("error %s: %s; want success %q", rep.Err.Code, rep.Err.Message, data)
	}
	if string(rep.Data) != data {
		tb.Fatalf("reply %q, want %q", rep.Data, data)
	}
}

// echoService is an in-process service that replies with its input.
var echoService = Service{
	ServiceInfo: handlers.ServiceInfo{Name: "echo", Description: "echo"},
	Handler: handlers.HandlerFunc(func(ctx context.Context, req *handlers.Request) ([]byte, error) {
		return req.Data, nil
	}),
}

// testNetwork is the network in-memory transports claim to be on.
var testNetwork = descriptor.Network{Type: descriptor.NetworkPeapod, Directory: "http://127.0.0.1:1"}

// startHost starts a Host on tr with an HTTP endpoint on a free port; cfg
// may set anything else. The host is shut down at the end of the test.
func startHost(tb testing.TB, tr Transport, cfg Config) *Host {
	tb.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = tb.TempDir()
	}
	cfg.Transport = tr
	if cfg.Network.Type == "" {
		cfg.Network = testNetwork
	}
	if cfg.HTTP.Addr == "" {
		cfg.HTTP.Addr = "127.0.0.1:0"
	}
	if os.Getenv("PEAPOD_TEST_LOG") != "" {
		cfg.Logger = zerolog.New(zerolog.NewConsoleWriter(func(w *zerolog.ConsoleWriter) { w.Out = os.Stderr }))
	}
	h, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

// get fetches path from the host's HTTP endpoint.
func get(tb testing.TB, h *Host, path string) (int, []byte) {
	tb.Helper()
	resp, err := http.Get("http://" + h.HTTPAddr() + path)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, body
}

// The plugin binaries the tests run, built once per test binary.
var builtPlugins = testbuild.New("peapod-framework-plugins-",
	testbuild.Target{Out: pluginTest, Pkg: "../plugins/internal/testplugin"},
	testbuild.Target{Out: pluginEcho, Pkg: "../examples/echo/plugin"},
	testbuild.Target{Out: pluginKV, Pkg: "../examples/kvstore/plugin"})

// Names of the built plugin binaries.
const (
	pluginTest = "testplugin"
	pluginEcho = "echo"
	pluginKV   = "kvstore"
)

// buildPlugins builds the test and example plugins (once) and returns the
// folder that holds them.
func buildPlugins(tb testing.TB) string {
	tb.Helper()
	return builtPlugins.Dir(tb)
}

// pluginDir returns a new plugins folder holding links to the named built
// plugins.
func pluginDir(tb testing.TB, names ...string) string {
	tb.Helper()
	bin := buildPlugins(tb)
	dir := tb.TempDir()
	for _, n := range names {
		if err := os.Symlink(filepath.Join(bin, n), filepath.Join(dir, n)); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	builtPlugins.Remove()
	os.Exit(code)
}

// eventually polls cond until it holds or the test timeout passes; for
// states that have no signal to wait on (a plugin coming back up).
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
