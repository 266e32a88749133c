package capture

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/anonymity"
)

// TestHelperProcess is not a test: run by TestLinksNameProcesses as a
// child, it connects to the address in CAPTURE_HELPER_DIAL, writes five
// 2000-byte packets and waits for its stdin to close.
func TestHelperProcess(t *testing.T) {
	addr := os.Getenv("CAPTURE_HELPER_DIAL")
	if addr == "" {
		return
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		os.Exit(2)
	}
	for range 5 {
		if _, err := c.Write(make([]byte, 2000)); err != nil {
			os.Exit(3)
		}
	}
	fmt.Println("sent")
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// Two processes send to a listener: the trace names each by its process
// (as a real observer would by its IP address), and the listener by its
// port.
func TestLinksNameProcesses(t *testing.T) {
	ln, _ := sink(t)
	capt, err := Start(Config{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var pids []int
	var stdins []io.WriteCloser
	for range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), "CAPTURE_HELPER_DIAL="+ln.Addr().String())
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Wait()
		buf := make([]byte, 64)
		n, _ := out.Read(buf) // "sent": its packets are out and its socket open
		if !strings.Contains(string(buf[:n]), "sent") {
			t.Fatalf("helper said %q", buf[:n])
		}
		pids = append(pids, cmd.Process.Pid)
		stdins = append(stdins, in)
	}
	links := NewLinks([]Endpoint{
		{Node: anonymity.Node{Name: "a", Role: anonymity.RoleClient}, PIDs: pids[:1]},
		{Node: anonymity.Node{Name: "b", Role: anonymity.RoleClient}, PIDs: pids[1:]},
		{Node: anonymity.Node{Name: "gw", Role: anonymity.RoleGateway}, Listen: []netip.AddrPort{ln.Addr().(*net.TCPAddr).AddrPort()}},
	})
	if err := links.Snapshot(); err != nil {
		t.Fatal(err)
	}
	for _, in := range stdins {
		in.Close()
	}
	segs, _, err := capt.Stop()
	if err != nil {
		t.Fatal(err)
	}
	tr, rep := links.Trace(segs, start)
	count := map[string]int{}
	for _, e := range tr.Events {
		count[tr.Nodes[e.From].Name+"→"+tr.Nodes[e.To].Name]++
		if e.Class != anonymity.ClassData {
			t.Errorf("a 2000-byte packet classed %v", e.Class)
		}
	}
	if count["a→gw"] != 5 || count["b→gw"] != 5 || len(count) != 2 {
		t.Errorf("packets by link %v, want 5 a→gw and 5 b→gw; report %v", count, rep)
	}
}
