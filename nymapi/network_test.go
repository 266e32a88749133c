package nymapi

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/localnet"
	"github.com/peapod-mixnet/peapod/wsapi"
)

// peer is a real client on a local network, served by a Server on a
// loopback port.
type peer struct {
	c    *client.Client
	srv  *Server
	url  string
	once sync.Once
}

// startPeer starts a client on network n and serves it. configure, if set,
// changes the client's configuration first.
func startPeer(t *testing.T, n *localnet.Network, name string, log zerolog.Logger, configure func(*client.Config)) *peer {
	t.Helper()
	cfg := client.Config{
		DataDir:      filepath.Join(t.TempDir(), name),
		DirectoryURL: n.DirectoryURL(),
		NoDelay:      true,
		Cover:        client.CoverConfig{Disabled: true},
		Logger:       log.With().Str("peer", name).Logger(),
	}
	if configure != nil {
		configure(&cfg)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		c.Close()
		t.Fatal(err)
	}
	srv := New(Config{Backend: c, Logger: cfg.Logger})
	ln := listen(t)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	p := &peer{c: c, srv: srv, url: "ws://" + ln.Addr().String()}
	t.Cleanup(func() { p.stop(t); <-served })
	return p
}

// stop closes the server, then the client; it may be called again.
func (p *peer) stop(t *testing.T) {
	p.once.Do(func() {
		if err := p.srv.Close(); err != nil {
			t.Errorf("closing the server: %v", err)
		}
		if err := p.c.Close(); err != nil {
			t.Errorf("closing the client: %v", err)
		}
	})
}

func dialApp(t *testing.T, url string, opts ...wsapi.Option) *wsapi.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := wsapi.Dial(ctx, url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// receive waits for the next Received, failing on any other response.
func receive(t *testing.T, app *wsapi.Conn) wsapi.Received {
	t.Helper()
	// A deadline, not an expectation: a 280 kB answer on a busy 2-core
	// machine with the race detector takes about 30 s.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := app.Receive(ctx)
	if err != nil {
		t.Fatalf("receiving: %v", err)
	}
	r, ok := resp.(wsapi.Received)
	if !ok {
		t.Fatalf("got %#v, want a Received", resp)
	}
	return r
}

// send sends r; when r names its lane, the client's first answer must be
// that lane's queue length, as Nym's client answers.
func send(t *testing.T, app *wsapi.Conn, r wsapi.Request) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := app.Send(ctx, r); err != nil {
		t.Fatal(err)
	}
	named, ok := r.(interface{ Lane() (uint64, bool) })
	if !ok {
		return
	}
	if lane, ok := named.Lane(); ok {
		resp, err := app.Receive(ctx)
		if got, isLane := resp.(wsapi.LaneQueueLength); err != nil || !isLane || got.Lane != lane {
			t.Fatalf("after a send on lane %d: %#v, %v; want its LaneQueueLength", lane, resp, err)
		}
	}
}

// TestOverLocalNetwork runs Nym-style applications against real clients on
// a local network: an application on client A sends to one on client B, B
// replies anonymously through the SURBs A sent, in binary and in JSON; a
// reply that can never go out is reported to B's application.
func TestOverLocalNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole network")
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := localnet.Start(ctx, localnet.Config{DataDir: t.TempDir(), DirectoryAddr: "127.0.0.1:0", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })

	a := startPeer(t, n, "a", log, nil)
	// B waits for SURBs it asks for as long as a real client does: a
	// large answer on five SURBs asks several times, and on a loaded
	// machine an answer can take longer than a short wait.
	b := startPeer(t, n, "b", log, nil)

	for _, form := range []struct {
		name string
		opts []wsapi.Option
	}{
		{"binary", nil},
		{"json", []wsapi.Option{wsapi.WithJSON()}},
	} {
		t.Run(form.name, func(t *testing.T) {
			appA := dialApp(t, a.url, form.opts...)
			appB := dialApp(t, b.url, form.opts...)
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			addrB, err := appB.SelfAddress(sctx)
			if err != nil || addrB != b.c.Address() {
				t.Fatalf("B's self address: %v, %v; want %v", addrB, err, b.c.Address())
			}
			if _, err := appA.SelfAddress(sctx); err != nil {
				t.Fatal(err)
			}

			// A plain message, with bytes that are not UTF-8.
			plain := []byte("plain \xff\x00 " + form.name)
			send(t, appA, wsapi.Send{Recipient: addrB, ConnectionID: 1, Data: plain})
			if got := receive(t, appB); !bytes.Equal(got.Data, plain) || got.SenderTag != nil {
				t.Fatalf("B got %q (tag %v), want %q without a tag", got.Data, got.SenderTag, plain)
			}

			// An anonymous question and its reply through the SURBs.
			question := []byte("question " + form.name)
			send(t, appA, wsapi.SendAnonymous{ReplySURBs: 5, Recipient: addrB, ConnectionID: 2, Data: question})
			got := receive(t, appB)
			if !bytes.Equal(got.Data, question) || got.SenderTag == nil {
				t.Fatalf("B got %q (tag %v), want %q with a tag", got.Data, got.SenderTag, question)
			}
			// A large answer: many packets, one message.
			answer := bytes.Repeat([]byte("answer "+form.name+" "), 20_000)
			send(t, appB, wsapi.Reply{SenderTag: *got.SenderTag, ConnectionID: 3, Data: answer})
			if back := receive(t, appA); !bytes.Equal(back.Data, answer) || back.SenderTag != nil {
				t.Fatalf("A got %d bytes (tag %v), want the %d-byte answer without a tag", len(back.Data), back.SenderTag, len(answer))
			}
		})
	}

	t.Run("failed reply reported", func(t *testing.T) {
		// C has never written to D: D holds only the one SURB C sends. D
		// gives up on SURBs it asked for after a second, so that the
		// failure comes soon.
		c := startPeer(t, n, "c", log, nil)
		d := startPeer(t, n, "d", log, func(c *client.Config) { c.SURBs.RequestWait = time.Second })
		appC := dialApp(t, c.url)
		appB := dialApp(t, d.url)
		send(t, appC, wsapi.SendAnonymous{ReplySURBs: 1, Recipient: d.c.Address(), Data: []byte("last words")})
		got := receive(t, appB)
		if got.SenderTag == nil {
			t.Fatal("no sender tag")
		}
		// C leaves for good: it will never send the SURBs B asks for.
		c.stop(t)
		send(t, appB, wsapi.Reply{SenderTag: *got.SenderTag, ConnectionID: 9, Data: []byte("too late")})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := appB.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		e, ok := resp.(wsapi.Error)
		want := fmt.Sprintf("reply to sender tag %s (connection id 9) failed: client: no reply SURBs left", got.SenderTag)
		if !ok || e.Kind != wsapi.KindOther || !strings.Contains(e.Message, want) {
			t.Fatalf("got %#v, want an Error of kind other containing %q", resp, want)
		}
	})
}
