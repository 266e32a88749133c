//go:build unix

package plugins

import (
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
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
	conn := os.NewFile(3, "pingpong")
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
func BenchmarkUnixPingPong(b *testing.B) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "pingpong"), os.NewFile(uintptr(fds[1]), "pingpong-peer")
	defer ours.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPingPongHelperProcess$")
	cmd.Env = append(os.Environ(), pingPongEnv+"=1")
	cmd.ExtraFiles = []*os.File{theirs}
	if err := cmd.Start(); err != nil {
		theirs.Close()
		b.Fatal(err)
	}
	theirs.Close()
	defer func() {
		ours.Close() // the peer exits on EOF
		cmd.Wait()
	}()
	msg := make([]byte, benchPayload)
	reply := make([]byte, benchPayload)
	b.SetBytes(benchPayload)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := ours.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(ours, reply); err != nil {
			b.Fatal(err)
		}
	}
}
