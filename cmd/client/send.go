package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/wsapi"

	"github.com/peapod-mixnet/peapod/internal/cli"
)

// Defaults of `client send`.
const (
	defaultReplySURBs  = 10
	defaultReplyWait   = 30 * time.Second
	defaultSendTimeout = time.Minute
	// lanePollInterval is how often `send --via` asks the running client
	// whether the message has left its send queue: the API has no signal
	// for it.
	lanePollInterval = 20 * time.Millisecond
)

// sendFlags are the flags of `client send` that are not in the file.
type sendFlags struct {
	to        string
	anonymous bool
	surbs     uint
	wait      time.Duration
	replies   int
	timeout   time.Duration
	via       string
}

// runSend is `client send`: it sends one message to --to and waits until it
// is delivered (at most --timeout), then prints on stdout, one per line,
// the messages that arrive within --wait, stopping after --replies of them.
// --wait defaults to 30 s with --anonymous (the recipient can answer through
// the SURBs) and to 0 without. The message is the argument, or standard
// input when there is none or it is "-".
//
// It runs its own client from the data folder. When `client run` holds that
// folder it says so; --via ws://127.0.0.1:1977 then sends through that
// client's WebSocket API instead (which can confirm that the message left
// the client's send queue, not that it arrived).
func runSend(args []string, stdout, stderr io.Writer) int {
	cfg := defaultClientFile("warn")
	f := sendFlags{surbs: defaultReplySURBs, wait: defaultReplyWait, replies: 1, timeout: defaultSendTimeout}
	cmd := command("send", stdout, stderr)
	p, log, status, ok := setup(cmd, args, &cfg, func(fs *flag.FlagSet, c *clientFile) {
		bindCommon(fs, c)
		bindTuning(fs, c)
		fs.StringVar(&f.to, "to", "", "`address` of the recipient (required)")
		fs.BoolVar(&f.anonymous, "anonymous", false, "attach reply SURBs, so that the recipient can answer without learning the sender's address")
		fs.UintVar(&f.surbs, "reply-surbs", f.surbs, "how many reply SURBs to attach with --anonymous")
		fs.DurationVar(&f.wait, "wait", f.wait, "how long to print replies after delivery (default 30s with --anonymous, 0 without)")
		fs.IntVar(&f.replies, "replies", f.replies, "stop after this many replies (0: wait the whole --wait)")
		fs.DurationVar(&f.timeout, "timeout", f.timeout, "how long to wait for the delivery")
		fs.StringVar(&f.via, "via", "", "send through the WebSocket API of a running client at `URL` (e.g. ws://127.0.0.1:1977) instead of running one")
	})
	if !ok {
		return status
	}
	if !p.Set["wait"] && !f.anonymous {
		f.wait = 0
	}
	to, data, err := f.check(p)
	if err != nil {
		return cmd.Status(err)
	}

	ctx, stop := cli.SignalContext(log, nil)
	defer stop()
	s := sender{f: f, to: to, data: data, stdout: stdout, stderr: stderr}
	if f.via != "" {
		err = s.viaWebSocket(ctx)
	} else {
		err = s.withOwnClient(ctx, cfg, log)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return cli.ExitError
	}
	return cli.ExitOK
}

// check validates the flags and reads the message.
func (f *sendFlags) check(p cli.Parsed) (address.Address, []byte, error) {
	switch {
	case f.to == "":
		return address.Address{}, nil, errors.New("client send: --to is required")
	case f.surbs > 0 && !f.anonymous && p.Set["reply-surbs"]:
		return address.Address{}, nil, errors.New("client send: --reply-surbs needs --anonymous")
	case f.wait < 0 || f.timeout <= 0 || f.replies < 0:
		return address.Address{}, nil, errors.New("client send: --wait, --timeout and --replies must not be negative, and --timeout not zero")
	case len(p.Args) > 1:
		return address.Address{}, nil, fmt.Errorf("client send: give the message as one argument (quote it); got %d arguments", len(p.Args))
	}
	to, err := address.Parse(f.to)
	if err != nil {
		return address.Address{}, nil, fmt.Errorf("client send: --to: %w", err)
	}
	if len(p.Args) == 1 && p.Args[0] != "-" {
		return to, []byte(p.Args[0]), nil
	}
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		return address.Address{}, nil, fmt.Errorf("client send: reading the message from standard input: %w", err)
	}
	return to, data, nil
}

// sender sends one message and prints what comes back.
type sender struct {
	f              sendFlags
	to             address.Address
	data           []byte
	stdout, stderr io.Writer
	replies        int
}

// printReply writes one received message on stdout and reports whether
// enough have come.
func (s *sender) printReply(data []byte) bool {
	s.stdout.Write(data)
	if len(data) == 0 || data[len(data)-1] != '\n' {
		io.WriteString(s.stdout, "\n")
	}
	s.replies++
	return s.f.replies > 0 && s.replies >= s.f.replies
}

// withOwnClient sends through a client of its own on the data folder.
func (s *sender) withOwnClient(ctx context.Context, cfg clientFile, log zerolog.Logger) error {
	c, err := openClient(cfg.Client.clientConfig(log))
	if errors.Is(err, client.ErrDataDirInUse) {
		return fmt.Errorf("%v\nTo send through the running client, add --via ws://%s", err, cfg.WebSocket.Listen)
	}
	if err != nil {
		return err
	}
	defer c.Close()

	dctx, cancel := context.WithTimeout(ctx, s.f.timeout)
	defer cancel()
	if err := c.Start(dctx); err != nil {
		return fmt.Errorf("client send: connecting through the directory %s: %w", cfg.Client.Directory, err)
	}
	var d *client.Delivery
	if s.f.anonymous {
		d, err = c.SendAnonymous(dctx, s.to, s.data, int(s.f.surbs))
	} else {
		d, err = c.Send(dctx, s.to, s.data)
	}
	if err != nil {
		return fmt.Errorf("client send: %w", err)
	}
	if err := d.Wait(dctx); err != nil {
		return fmt.Errorf("client send: the message was not delivered: %w", err)
	}
	fmt.Fprintln(s.stderr, "delivered")
	if s.f.wait == 0 {
		return nil
	}

	rctx, cancel := context.WithTimeout(ctx, s.f.wait)
	defer cancel()
	for {
		m, err := c.Receive(rctx)
		if err != nil {
			s.noteEnd(ctx, err)
			return nil
		}
		if s.printReply(m.Data) {
			return nil
		}
	}
}

// noteEnd tells why the wait for replies ended without enough of them.
func (s *sender) noteEnd(ctx context.Context, err error) {
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(s.stderr, "interrupted")
	case errors.Is(err, context.DeadlineExceeded):
		fmt.Fprintf(s.stderr, "%d replies within %v\n", s.replies, s.f.wait)
	default:
		fmt.Fprintf(s.stderr, "stopped waiting for replies: %v\n", err)
	}
}

// viaWebSocket sends through a running client's WebSocket API. The message
// goes on a lane of its own, and the command asks for that lane's queue
// length until it is empty: the message has then left the client's send
// queue. A failure the client reports (an Error response) ends the command
// with that error.
func (s *sender) viaWebSocket(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, s.f.timeout)
	defer cancel()
	conn, err := wsapi.Dial(dctx, s.f.via)
	if err != nil {
		return fmt.Errorf("client send: %w", err)
	}
	defer conn.Close()

	lane, err := randomLane()
	if err != nil {
		return err
	}
	var req wsapi.Request = wsapi.Send{Recipient: s.to, ConnectionID: lane, Data: s.data}
	if s.f.anonymous {
		req = wsapi.SendAnonymous{ReplySURBs: uint32(s.f.surbs), Recipient: s.to, ConnectionID: lane, Data: s.data}
	}
	if err := conn.Send(dctx, req); err != nil {
		return fmt.Errorf("client send: %w", err)
	}

	// One goroutine reads responses until the connection closes.
	responses := make(chan wsapi.Response)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	defer func() {
		close(done)
		conn.Close()
		<-readErr
	}()
	go func() {
		for {
			r, err := conn.Receive(context.Background())
			var perr *wsapi.ProtocolError
			switch {
			case errors.As(err, &perr):
				continue // a frame we cannot read; the connection is fine
			case err != nil:
				readErr <- err
				return
			}
			select {
			case responses <- r:
			case <-done:
				readErr <- nil
				return
			}
		}
	}()

	// Wait until the message has left the send queue.
	poll := time.NewTicker(lanePollInterval)
	defer poll.Stop()
	if err := conn.Send(dctx, wsapi.GetLaneQueueLength{ConnectionID: lane}); err != nil {
		return fmt.Errorf("client send: %w", err)
	}
	for sent := false; !sent; {
		select {
		case <-dctx.Done():
			return fmt.Errorf("client send: waiting for the message to leave the client: %w", dctx.Err())
		case err := <-readErr:
			readErr <- err // for the deferred wait
			return fmt.Errorf("client send: %w", err)
		case <-poll.C:
			if err := conn.Send(dctx, wsapi.GetLaneQueueLength{ConnectionID: lane}); err != nil {
				return fmt.Errorf("client send: %w", err)
			}
		case r := <-responses:
			switch r := r.(type) {
			case wsapi.Error:
				return fmt.Errorf("client send: the client refused the message: %s", r.Message)
			case wsapi.LaneQueueLength:
				sent = r.Lane == lane && r.QueueLength == 0
			case wsapi.Received:
				if s.printReply(r.Data) {
					return nil
				}
			}
		}
	}
	poll.Stop()
	fmt.Fprintln(s.stderr, "sent (through the running client, which cannot confirm the delivery)")
	if s.f.wait == 0 {
		return nil
	}

	timer := time.NewTimer(s.f.wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			s.noteEnd(ctx, ctx.Err())
			return nil
		case <-timer.C:
			s.noteEnd(ctx, context.DeadlineExceeded)
			return nil
		case err := <-readErr:
			readErr <- err
			return fmt.Errorf("client send: waiting for replies: %w", err)
		case r := <-responses:
			switch r := r.(type) {
			case wsapi.Error:
				return fmt.Errorf("client send: %s", r.Message)
			case wsapi.Received:
				if s.printReply(r.Data) {
					return nil
				}
			}
		}
	}
}

// randomLane picks a lane no other application is likely to use.
func randomLane() (uint64, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("client send: %w", err)
	}
	return binary.BigEndian.Uint64(b[:]) | 1, nil // never 0, the general lane
}
