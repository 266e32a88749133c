package capture

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// socketOwners maps every TCP socket that one of pids has open, by its
// local and remote addresses, to that pid, from /proc/net/tcp{,6} and
// /proc/<pid>/fd. Both addresses: Linux gives two connections to different
// destinations the same local port when it can, so a port alone does not
// name a socket.
func socketOwners(pids []int) (map[[2]netip.AddrPort]int, error) {
	inodePID := make(map[uint64]int)
	for _, pid := range pids {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue // the process is gone
		}
		for _, e := range ents {
			link, err := os.Readlink(filepath.Join(dir, e.Name()))
			if err != nil {
				continue
			}
			if s, ok := strings.CutPrefix(link, "socket:["); ok {
				if ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil {
					inodePID[ino] = pid
				}
			}
		}
	}
	out := make(map[[2]netip.AddrPort]int)
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		socks, err := readProcNetTCP(f)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return nil, err
		}
		for _, s := range socks {
			if pid, ok := inodePID[s.inode]; ok {
				out[[2]netip.AddrPort{s.local, s.remote}] = pid
			}
		}
	}
	return out, nil
}

type procSocket struct {
	local, remote netip.AddrPort
	inode         uint64
}

// readProcNetTCP reads the local and remote addresses and the inode of each
// socket listed in a /proc/net/tcp-format file.
func readProcNetTCP(path string) ([]procSocket, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []procSocket
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		local, err := parseProcAddr(fields[1])
		if err != nil {
			continue
		}
		remote, err := parseProcAddr(fields[2])
		if err != nil {
			continue
		}
		ino, err := strconv.ParseUint(fields[9], 10, 64)
		if err != nil {
			continue
		}
		out = append(out, procSocket{local: local, remote: remote, inode: ino})
	}
	return out, sc.Err()
}

// parseProcAddr parses "0100007F:1F90": the address as 32-bit words in
// host order (little-endian here), the port in hex.
func parseProcAddr(s string) (netip.AddrPort, error) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("capture: odd address %q", s)
	}
	raw, err := hex.DecodeString(ipHex)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("capture: odd address %q", s)
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("capture: odd port %q", s)
	}
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(b[i:], binary.LittleEndian.Uint32(raw[i:]))
	}
	ip, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), nil
}
