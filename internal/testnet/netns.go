package testnet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Netem is the loss and latency tc netem adds to every interface of the
// namespaces, in both directions.
type Netem struct {
	// Loss is the probability, from 0 to 1, that a packet (an IP packet,
	// not a Sphinx frame: TCP retransmits it) is lost.
	Loss float64
	// Delay and Jitter are added to every packet.
	Delay, Jitter time.Duration
}

// Namespaces are network namespaces for the mixnodes, one per layer, each
// joined to a bridge in the host's namespace by a veth pair:
//
//	host: bridge ptb<id> 10.77.K.1/24 ── veth ── ptn<id>-l1 10.77.K.11
//	                                  ── veth ── ptn<id>-l2 10.77.K.12
//	                                  ── veth ── ptn<id>-l3 10.77.K.13
//
// so every packet between layers, and between a gateway and a mixnode,
// crosses veth interfaces, where tc netem (when the kernel has it) adds
// loss and latency. The processes outside the namespaces listen on the
// bridge address. Creating them needs root (CAP_NET_ADMIN and
// CAP_SYS_ADMIN); see NamespacesAvailable.
type Namespaces struct {
	id     string
	subnet [3]byte
	names  []string // by layer
	netem  bool
	netErr error // why netem could not be applied
}

// NamespacesAvailable reports why namespaces cannot be made here (not
// root, no ip command, no permission), or nil when they can.
func NamespacesAvailable() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root (ip netns add)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("the ip command (iproute2) is not installed")
	}
	probe := fmt.Sprintf("ptn-probe-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add is not permitted: %v: %s", err, strings.TrimSpace(string(out)))
	}
	exec.Command("ip", "netns", "del", probe).Run()
	return nil
}

// NewNamespaces creates the namespaces, the bridge and the veth pairs, and
// applies netem to every veth interface when the kernel has it (see
// Netem); Close removes them.
func NewNamespaces(ctx context.Context, netem Netem) (_ *Namespaces, err error) {
	if err := NamespacesAvailable(); err != nil {
		return nil, err
	}
	var b [2]byte
	rand.Read(b[:])
	k, _ := rand.Int(rand.Reader, big.NewInt(250))
	ns := &Namespaces{id: hex.EncodeToString(b[:]), subnet: [3]byte{10, 77, byte(k.Int64() + 2)}}
	defer func() {
		if err != nil {
			ns.Close()
		}
	}()
	bridge := "ptb" + ns.id
	host := ns.HostIP().String() + "/24"
	if err := ipRun(ctx, "link", "add", bridge, "type", "bridge"); err != nil {
		return nil, err
	}
	if err := ipRun(ctx, "addr", "add", host, "dev", bridge); err != nil {
		return nil, err
	}
	if err := ipRun(ctx, "link", "set", bridge, "up"); err != nil {
		return nil, err
	}
	var netemIfaces [][2]string // namespace ("" for the host), interface
	for layer := 1; layer <= Layers; layer++ {
		name := fmt.Sprintf("ptn%s-l%d", ns.id, layer)
		hostEnd, nsEnd := fmt.Sprintf("ptv%sl%dh", ns.id, layer), fmt.Sprintf("ptv%sl%dn", ns.id, layer)
		_, ip := ns.Layer(layer)
		steps := [][]string{
			{"netns", "add", name},
			{"link", "add", hostEnd, "type", "veth", "peer", "name", nsEnd},
			{"link", "set", hostEnd, "master", bridge},
			{"link", "set", hostEnd, "up"},
			{"link", "set", nsEnd, "netns", name},
			{"-n", name, "addr", "add", ip.String() + "/24", "dev", nsEnd},
			{"-n", name, "link", "set", nsEnd, "up"},
			{"-n", name, "link", "set", "lo", "up"},
		}
		for i, s := range steps {
			if err := ipRun(ctx, s...); err != nil {
				return nil, err
			}
			if i == 0 {
				ns.names = append(ns.names, name)
			}
		}
		netemIfaces = append(netemIfaces, [2]string{"", hostEnd}, [2]string{name, nsEnd})
	}
	if netem != (Netem{}) {
		ns.netem = true
		for _, ifc := range netemIfaces {
			if err := applyNetem(ctx, ifc[0], ifc[1], netem); err != nil {
				ns.netem, ns.netErr = false, err
				break
			}
		}
	}
	return ns, nil
}

// applyNetem adds a netem qdisc to iface (in namespace ns, "" for the
// host's).
func applyNetem(ctx context.Context, ns, iface string, n Netem) error {
	args := []string{"qdisc", "add", "dev", iface, "root", "netem"}
	if n.Delay > 0 {
		args = append(args, "delay", fmt.Sprintf("%dus", n.Delay.Microseconds()))
		if n.Jitter > 0 {
			args = append(args, fmt.Sprintf("%dus", n.Jitter.Microseconds()))
		}
	}
	if n.Loss > 0 {
		args = append(args, "loss", fmt.Sprintf("%.4f%%", n.Loss*100))
	}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	out, err := exec.CommandContext(ctx, "tc", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("tc %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func ipRun(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("testnet: ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Netem reports whether netem was applied, and if not, why not.
func (ns *Namespaces) Netem() (bool, error) { return ns.netem, ns.netErr }

// HostIP is the bridge's address in the host's namespace.
func (ns *Namespaces) HostIP() netip.Addr {
	return netip.AddrFrom4([4]byte{ns.subnet[0], ns.subnet[1], ns.subnet[2], 1})
}

// Layer returns the namespace of the mixnodes of layer (1 to 3) and their
// address in it.
func (ns *Namespaces) Layer(layer int) (name string, ip netip.Addr) {
	return fmt.Sprintf("ptn%s-l%d", ns.id, layer), netip.AddrFrom4([4]byte{ns.subnet[0], ns.subnet[1], ns.subnet[2], byte(10 + layer)})
}

// Close deletes the namespaces (which deletes their veth pairs) and the
// bridge.
func (ns *Namespaces) Close() error {
	var errs []error
	ctx := context.Background()
	for _, name := range ns.names {
		if err := ipRun(ctx, "netns", "del", name); err != nil {
			errs = append(errs, err)
		}
	}
	ipRun(ctx, "link", "del", "ptb"+ns.id) // absent when creation failed early
	return errors.Join(errs...)
}
