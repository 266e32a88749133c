package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/peapod-mixnet/peapod/internal/atomicfile"
)

// ListenFile, in a node's data folder, remembers the addresses the node's
// listeners bound when they were told to take any free port (port 0), so
// that the node binds the same ports at its next start: its address in the
// directory, and the routes and gateway URLs that clients hold, stay valid
// across restarts. It is a JSON object mapping a listener's name ("mix",
// "client") to the literal ip:port it bound. Deleting the file lets the node
// take new ports.
const ListenFile = "listen.json"

// listenMu serialises the updates of listen files within the process.
var listenMu sync.Mutex

// Listen binds the TCP listener called name of the node whose data folder
// is dir. An addr with a port other than 0 is bound as given. An addr with
// port 0 binds the address ListenFile remembers for name, when it has the
// same host, and otherwise a free port, which it then remembers. When the
// remembered address is taken the error says so, names the file, and the
// node should not start elsewhere: clients would look for it at the old
// address.
func Listen(ctx context.Context, dir, name, addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("node: %s listen address %q: %w", name, addr, err)
	}
	var lc net.ListenConfig
	if port != "0" && port != "" {
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("node: %s listener: %w", name, err)
		}
		return ln, nil
	}
	path := filepath.Join(dir, ListenFile)
	listenMu.Lock()
	defer listenMu.Unlock()
	saved, err := loadListenFile(path)
	if err != nil {
		return nil, err
	}
	if ap, ok := saved[name]; ok && sameHost(host, ap) {
		ln, err := lc.Listen(ctx, "tcp", ap.String())
		if err != nil {
			return nil, fmt.Errorf("node: cannot bind %s, the %s address this node had before (remembered in %s so that its address stays the same): %w; stop whatever holds it, or delete the file to take a new port",
				ap, name, path, err)
		}
		return ln, nil
	}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("node: %s listener: %w", name, err)
	}
	bound := ln.Addr().(*net.TCPAddr).AddrPort()
	saved[name] = netip.AddrPortFrom(bound.Addr().Unmap(), bound.Port())
	if err := saveListenFile(path, saved); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// sameHost reports whether the remembered address ap was bound for the
// configured host: the listener's host has not changed since.
func sameHost(host string, ap netip.AddrPort) bool {
	if host == "" {
		return ap.Addr().IsUnspecified()
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap() == ap.Addr()
}

// maxListenFile bounds the listen file read: a few short addresses.
const maxListenFile = 4 << 10

// loadListenFile reads a listen file; a missing one is empty.
func loadListenFile(path string) (map[string]netip.AddrPort, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]netip.AddrPort{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxListenFile+1))
	if err != nil {
		return nil, fmt.Errorf("node: reading %s: %w", path, err)
	}
	if len(raw) > maxListenFile {
		return nil, fmt.Errorf("node: %s is larger than %d bytes; delete it to take new ports", path, maxListenFile)
	}
	var text map[string]string
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&text); err != nil {
		return nil, fmt.Errorf("node: %s is not a JSON object of addresses (%v); delete it to take new ports", path, err)
	}
	out := make(map[string]netip.AddrPort, len(text))
	for name, s := range text {
		ap, err := netip.ParseAddrPort(s)
		if err != nil || ap.Port() == 0 {
			return nil, fmt.Errorf("node: %s: %s address %q is not a literal ip:port; delete the file to take new ports", path, strconv.Quote(name), s)
		}
		out[name] = ap
	}
	return out, nil
}

// saveListenFile writes a listen file atomically.
func saveListenFile(path string, addrs map[string]netip.AddrPort) error {
	text := make(map[string]string, len(addrs))
	for name, ap := range addrs {
		text[name] = ap.String()
	}
	body, err := json.Marshal(text)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	err = atomicfile.Write(path, 0o600, func(f *os.File) error {
		_, err := f.Write(append(body, '\n'))
		return err
	})
	if err != nil {
		return fmt.Errorf("node: remembering the listen address: %w", err)
	}
	return nil
}
