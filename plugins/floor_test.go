//go:build unix

package plugins

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pluginpb "github.com/peapod-mixnet/peapod/plugins/proto"
)

// pingPongEnv tells a re-executed test binary to run as the echo end of
// BenchmarkUnixPingPong.
const pingPongEnv = "PEAPOD_TEST_PINGPONG"

// TestPingPongHelperProcess is not a test: BenchmarkUnixPingPong runs the
// test binary again with this function as its peer, which echoes every
// benchPayload bytes it reads on file descriptor 3 back on it.
func TestPingPongHelperProcess(t *testing.T) {
	if os.Getenv(pingPongEnv) == "" {
		t.Skip("helper process for BenchmarkUnixPingPong")
	}
	conn, err := asConn(os.NewFile(3, "pingpong"), os.Getenv(pingPongEnv))
	if err != nil {
		os.Exit(1)
	}
	buf := make([]byte, benchPayload)
	for {
		if _, err := io.ReadFull(conn, buf); err != nil {
			os.Exit(0)
		}
		if _, err := conn.Write(buf); err != nil {
			os.Exit(0)
		}
	}
}

// BenchmarkUnixPingPong is the floor under BenchmarkPluginDispatch: a
// benchPayload-byte message to another process over a Unix stream socket
// and back, with no framing, no gRPC and no handler. Whatever
// BenchmarkPluginDispatch costs above it is the plugin protocol's.
//
// Both ends are Go programs. In "blocking", each reads with a plain
// blocking system call, the cheapest way to wait; in "netpoll" the socket
// is a net.Conn, so each read parks its goroutine in Go's network poller
// and the scheduler wakes it, as for gRPC.
func BenchmarkUnixPingPong(b *testing.B) {
	for _, mode := range []string{"blocking", "netpoll"} {
		b.Run(mode, func(b *testing.B) { benchPingPong(b, mode) })
	}
}

func benchPingPong(b *testing.B, mode string) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "pingpong"), os.NewFile(uintptr(fds[1]), "pingpong-peer")
	defer ours.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPingPongHelperProcess$")
	cmd.Env = append(os.Environ(), pingPongEnv+"="+mode)
	cmd.ExtraFiles = []*os.File{theirs}
	if err := cmd.Start(); err != nil {
		theirs.Close()
		b.Fatal(err)
	}
	theirs.Close()
	conn, err := asConn(ours, mode)
	if err != nil {
		ours.Close()
		b.Fatal(err)
	}
	defer func() {
		conn.Close() // the peer exits on EOF
		cmd.Wait()
	}()
	msg := make([]byte, benchPayload)
	reply := make([]byte, benchPayload)
	b.SetBytes(benchPayload)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := conn.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(conn, reply); err != nil {
			b.Fatal(err)
		}
	}
}

// grpcEchoEnv tells a re-executed test binary to run as the gRPC server of
// BenchmarkGRPCStreamPingPong.
const grpcEchoEnv = "PEAPOD_TEST_GRPC_ECHO"

// echoServer answers Dispatch streams with echoStream.
type echoServer struct {
	pluginpb.UnimplementedHandlerServer
}

func (echoServer) Dispatch(stream pluginpb.Handler_DispatchServer) error {
	return echoStream(stream)
}

// TestGRPCEchoHelperProcess is not a test: BenchmarkGRPCStreamPingPong runs
// the test binary again with this function as its peer, a gRPC server (with
// the options of a plugin's) on the Unix socket listener it gets as file
// descriptor 3, whose Dispatch streams echo every request.
func TestGRPCEchoHelperProcess(t *testing.T) {
	if os.Getenv(grpcEchoEnv) == "" {
		t.Skip("helper process for BenchmarkGRPCStreamPingPong")
	}
	l, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		os.Exit(1)
	}
	gs := newGRPCServer(nil)
	pluginpb.RegisterHandlerServer(gs, echoServer{})
	_ = gs.Serve(l)
	os.Exit(0)
}

// BenchmarkGRPCStreamPingPong is a second floor: a benchPayload-byte
// request to another process on an open gRPC stream (the Dispatch rpc, over
// a Unix socket, with the plugin connection's options) and its echo back,
// with nothing of peapod's around it: no call ids, no concurrency, no
// handler. It is what gRPC itself costs BenchmarkPluginDispatch.
func BenchmarkGRPCStreamPingPong(b *testing.B) {
	sock := filepath.Join(b.TempDir(), "grpc.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		b.Fatal(err)
	}
	l.SetUnlinkOnClose(false) // the peer listens on it
	lf, err := l.File()
	l.Close()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestGRPCEchoHelperProcess$")
	cmd.Env = append(os.Environ(), grpcEchoEnv+"=1")
	cmd.ExtraFiles = []*os.File{lf}
	err = cmd.Start()
	lf.Close()
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	conn, err := grpc.NewClient("unix://"+sock,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(flowWindow),
		grpc.WithInitialConnWindowSize(flowWindow))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := pluginpb.NewHandlerClient(conn).Dispatch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	req := &pluginpb.HandleRequest{Service: "echo", Id: "bench", Requester: "requester", Data: make([]byte, benchPayload)}
	roundTrip := func() {
		req.CallId++
		if err := stream.Send(req); err != nil {
			b.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil || len(resp.GetData()) != benchPayload {
			b.Fatalf("Recv = %v, %v", resp, err)
		}
	}
	roundTrip() // connect
	b.SetBytes(benchPayload)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		roundTrip()
	}
}

// asConn returns f, a socket, as it is read and written in mode: f itself
// (blocking system calls), or a net.Conn on a copy of it (Go's poller),
// closing f.
func asConn(f *os.File, mode string) (io.ReadWriteCloser, error) {
	if mode != "netpoll" {
		return f, nil
	}
	defer f.Close()
	return net.FileConn(f)
}
