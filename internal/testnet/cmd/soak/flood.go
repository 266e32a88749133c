package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/gorilla/websocket"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/internal/gwproto"
	"github.com/peapod-mixnet/peapod/internal/testnet"
)

// With -flood the soak runs attackers beside the regular traffic (issue
// 14), from loopback addresses of their own, so that the gateways' limits
// per source address meet them and not the regular clients (127.0.0.1):
//
//   - a requester flooding the provider at -flood-rate requests a second,
//     with one SURB each, from -flood-tags sender tags (a client process
//     each, used in turn: a tag costs the attacker a client);
//   - -flood-handshakes half-open handshakes held at every gateway from
//     127.0.0.2, each opened again as soon as the gateway closes it;
//   - a registration of a fresh identity every -flood-register-every, from
//     127.0.0.3, at the gateways in turn.
//
// The regular traffic must still lose nothing; the report says what the
// attackers got.
const (
	handshakeSource    = "127.0.0.2"
	registrationSource = "127.0.0.3"
)

// flood is the attackers of one run and what became of their attempts.
type flood struct {
	s          *soak
	requesters []*testnet.Requester // one per sender tag, used in turn
	tracker    *testnet.Tracker
	sent       atomic.Int64

	handshakes, handshakesRefused atomic.Int64

	mu            sync.Mutex
	registrations map[string]int // by outcome: ok, or the error
}

// startFlood starts the flooding requesters' client processes, one per
// sender tag.
func (s *soak) startFlood(ctx context.Context) (*flood, error) {
	f := &flood{s: s, tracker: testnet.NewTracker(), registrations: make(map[string]int)}
	for i := range s.o.floodTags {
		name := "flooder"
		if s.o.floodTags > 1 {
			name = fmt.Sprintf("flooder-%d", i)
		}
		c, err := s.net.StartClient(ctx, name, testnet.ClientOptions{Delays: s.o.delays})
		if err != nil {
			return nil, err
		}
		conn, err := c.Dial(ctx)
		if err != nil {
			return nil, err
		}
		f.requesters = append(f.requesters, testnet.NewRequester(&testnet.WSEndpoint{Conn: conn}, s.provider.Address(), f.tracker, testnet.RequesterOptions{SURBs: 1}))
	}
	return f, nil
}

// close closes the flooding requesters.
func (f *flood) close() {
	for _, r := range f.requesters {
		r.Close()
	}
}

// run runs every attacker until ctx ends.
func (f *flood) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); f.requests(ctx) }()
	go func() { defer wg.Done(); f.registrationLoop(ctx) }()
	for _, g := range f.s.net.Gateways() {
		for range f.s.o.floodHandshakes {
			wg.Add(1)
			go func() { defer wg.Done(); f.holdHandshake(ctx, g) }()
		}
	}
	wg.Wait()
}

// requests sends echo requests at -flood-rate until ctx ends.
func (f *flood) requests(ctx context.Context) {
	every(ctx, time.Duration(float64(time.Second)/f.s.o.floodRate), func(n int) {
		id := fmt.Sprintf("flood-%07d", n)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if f.requesters[n%len(f.requesters)].Request(sctx, id, "echo", []byte(id)) == nil {
			f.sent.Add(1)
		}
		cancel()
	})
}

// holdHandshake keeps one half-open handshake at g: a TCP connection on
// which nothing is sent, opened again when the gateway closes it (after its
// handshake timeout, or on a restart). A connection the gateway refuses is
// answered at once with HTTP 503, which it counts.
func (f *flood) holdHandshake(ctx context.Context, g *testnet.Node) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(handshakeSource)}, Timeout: 5 * time.Second}
	for ctx.Err() == nil {
		c, err := d.DialContext(ctx, "tcp", g.ClientListen.String())
		if err != nil {
			pause(ctx, time.Second) // the gateway is restarting
			continue
		}
		f.handshakes.Add(1)
		stop := context.AfterFunc(ctx, func() { c.Close() })
		line, _ := bufio.NewReader(c).ReadString('\n') // until the gateway answers or closes
		stop()
		c.Close()
		if strings.Contains(line, "503") {
			f.handshakesRefused.Add(1)
			pause(ctx, time.Second)
		}
	}
}

// registrationLoop registers a fresh identity every -flood-register-every
// at the gateways in turn.
func (f *flood) registrationLoop(ctx context.Context) {
	every(ctx, f.s.o.floodRegisterEvery, func(n int) {
		gws := f.s.net.Gateways()
		outcome := "ok"
		if err := register(ctx, gws[n%len(gws)]); err != nil {
			outcome = err.Error()
			if errors.Is(err, gwproto.ErrRefused) {
				outcome = "refused: " + outcome
			}
		}
		f.mu.Lock()
		f.registrations[outcome]++
		f.mu.Unlock()
	})
}

// register registers a fresh identity at g from registrationSource.
func register(ctx context.Context, g *testnet.Node) error {
	gwKey, err := address.DecodeKey(g.Identity(), ed25519.PublicKeySize)
	if err != nil {
		return err
	}
	_, id, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d := websocket.Dialer{NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(registrationSource)}}).DialContext}
	ws, resp, err := d.DialContext(ctx, "ws://"+g.ClientListen.String(), nil)
	if err != nil {
		if resp != nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
			return fmt.Errorf("%s: %s", http.StatusText(resp.StatusCode), strings.TrimSpace(string(b)))
		}
		return errors.New("gateway unreachable")
	}
	defer ws.Close()
	_, sess, err := gwproto.Register(ctx, ws, id, gwproto.GatewayKeys{Identity: gwKey, Noise: g.NoiseKey().Public()}, rand.Reader, time.Now())
	if err != nil {
		return err
	}
	return sess.Close()
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// print writes what the attackers got.
func (f *flood) print(w io.Writer) {
	rep := f.tracker.Report()
	outcomes := make([]string, 0, len(rep.Outcomes))
	for k, v := range rep.Outcomes {
		outcomes = append(outcomes, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(outcomes)
	f.mu.Lock()
	regs := make([]string, 0, len(f.registrations))
	for k, v := range f.registrations {
		regs = append(regs, fmt.Sprintf("%s %d", k, v))
	}
	f.mu.Unlock()
	slices.Sort(regs)
	fmt.Fprintf(w, "\nattackers (-flood):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "flood requests sent\t%d at %.0f/s from %d tags in turn, one SURB each\n", f.sent.Load(), f.s.o.floodRate, len(f.requesters))
	fmt.Fprintf(tw, "flood replies by outcome\t%s (no reply: %d)\n", strings.Join(outcomes, ", "), rep.Lost)
	fmt.Fprintf(tw, "half-open handshakes opened\t%d (%d per gateway held at once from %s), refused %d\n",
		f.handshakes.Load(), f.s.o.floodHandshakes, handshakeSource, f.handshakesRefused.Load())
	fmt.Fprintf(tw, "registrations from %s\t%s\n", registrationSource, strings.Join(regs, ", "))
	tw.Flush()
}
