package sphinx

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite sphinx/testdata/vectors.json from the current code")

const vectorsPath = "testdata/vectors.json"

// vectorFile is the layout of testdata/vectors.json. Every value is made from
// fixed keys and deterministic randomness (detReader over the vector's
// label), so the file pins the whole format: building, each hop's output,
// replay tags and the final payload. Negative cases are entries of their own.
type vectorFile struct {
	Comment string   `json:"comment"`
	Vectors []vector `json:"vectors"`
}

type vector struct {
	Name string `json:"name"`
	// Kind is "forward", "surb" (a reply on a SURB), or "negative" (a
	// mutation of the packet of the vector named Base).
	Kind string `json:"kind"`

	Size        string      `json:"size,omitempty"`
	Version     uint16      `json:"version,omitempty"`
	Hops        []vectorHop `json:"hops,omitempty"`
	Destination string      `json:"destination,omitempty"`
	SURBID      string      `json:"surb_id,omitempty"`
	Message     string      `json:"message,omitempty"`
	RandLabel   string      `json:"rand_label,omitempty"`
	SURB        string      `json:"surb,omitempty"`
	Packet      string      `json:"packet,omitempty"`
	// Per hop: the replay tag and the SHA-256 of what the hop sends on (or,
	// at the last hop, of the payload message).
	Steps []vectorStep `json:"steps,omitempty"`

	Base     string `json:"base,omitempty"`
	Mutation string `json:"mutation,omitempty"` // flip-bit, truncate, replay
	Bit      int    `json:"bit,omitempty"`
	Length   int    `json:"length,omitempty"`
	// Hop is where the (mutated) packet is processed; earlier hops process
	// the base packet unchanged. Error is the error that hop must return.
	Hop   int    `json:"hop,omitempty"`
	Error string `json:"error,omitempty"`
}

type vectorHop struct {
	PrivateKey string `json:"private_key"`
	Address    string `json:"address"`
	DelayNS    int64  `json:"delay_ns"`
}

type vectorStep struct {
	ReplayTag    string `json:"replay_tag"`
	OutputSHA256 string `json:"output_sha256"`
}

func vectorHops(n int) []vectorHop {
	hops := make([]vectorHop, n)
	for i := range hops {
		k := sha256.Sum256(fmt.Appendf(nil, "peapod sphinx vector key %d", i))
		hops[i] = vectorHop{
			PrivateKey: hex.EncodeToString(k[:]),
			Address:    fmt.Sprintf("192.0.2.%d:%d", i+1, 1789+i),
			DelayNS:    int64(i+1) * int64(15*time.Millisecond),
		}
	}
	return hops
}

func sizeByName(name string) (PacketSize, error) {
	for _, s := range PacketSizes {
		if s.String() == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("unknown size %q", name)
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in vector: %v", err)
	}
	return b
}

// vectorRoute turns a vector's hops into processors and a route.
func vectorRoute(t testing.TB, hops []vectorHop) ([]*Processor, []Hop) {
	procs := make([]*Processor, len(hops))
	route := make([]Hop, len(hops))
	for i, h := range hops {
		k, err := NewPrivateKey(mustHex(t, h.PrivateKey))
		if err != nil {
			t.Fatal(err)
		}
		addr, err := NewNodeAddress(netip.MustParseAddrPort(h.Address))
		if err != nil {
			t.Fatal(err)
		}
		procs[i] = NewProcessor(k, NewReplayFilter(100, 1e-5))
		route[i] = Hop{Address: addr, PublicKey: k.PublicKey(), Delay: time.Duration(h.DelayNS)}
	}
	return procs, route
}

// buildVector makes a vector's packet (and SURB) from its inputs.
func buildVector(t testing.TB, v *vector) (pkt, surbBytes []byte, surbKey *ReplyKey) {
	t.Helper()
	size, err := sizeByName(v.Size)
	if err != nil {
		t.Fatal(err)
	}
	_, route := vectorRoute(t, v.Hops)
	dest := Destination(mustHex(t, v.Destination))
	id := SURBID(mustHex(t, v.SURBID))
	msg := mustHex(t, v.Message)
	version := Version
	if v.Version != 0 {
		version = v.Version
	}
	switch v.Kind {
	case "forward":
		pkt, err = appendPacket(nil, detReader(v.RandLabel), size, route, finalSlotInfo{dest, id, version}, msg)
	case "surb":
		var surb *SURB
		surb, err = NewSURB(detReader(v.RandLabel), route, dest, id)
		if err != nil {
			t.Fatal(err)
		}
		surbBytes, _ = surb.AppendBinary(nil)
		pkt, err = surb.NewPacket(size, SealReply(nil, &surb.Key, msg))
		surbKey = &surb.Key
	default:
		t.Fatalf("vector %q: unknown kind %q", v.Name, v.Kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	return pkt, surbBytes, surbKey
}

// runVector processes a vector's packet hop by hop and returns the steps and
// the error of the hop that failed, if any.
func runVector(t testing.TB, v *vector, pkt []byte, surbKey *ReplyKey) ([]vectorStep, int, error) {
	procs, _ := vectorRoute(t, v.Hops)
	var steps []vectorStep
	for i, p := range procs {
		res, err := p.Process(nil, pkt)
		if err != nil {
			return steps, i, err
		}
		out := res.Packet
		if res.Final {
			out = res.Payload
			if surbKey != nil {
				if out, err = OpenReply(nil, surbKey, res.Payload); err != nil {
					return steps, i, err
				}
			}
			if !bytes.Equal(out, mustHex(t, v.Message)) {
				t.Fatalf("vector %q: final message differs", v.Name)
			}
		}
		sum := sha256.Sum256(out)
		steps = append(steps, vectorStep{ReplayTag: hex.EncodeToString(res.ReplayTag[:]), OutputSHA256: hex.EncodeToString(sum[:])})
		pkt = res.Packet
	}
	return steps, -1, nil
}

// runNegative applies a negative vector to its base and returns the error of
// the hop under test.
func runNegative(t testing.TB, v *vector, base *vector) error {
	procs, _ := vectorRoute(t, base.Hops)
	pkt := mustHex(t, base.Packet)
	for i := 0; i < v.Hop; i++ {
		res, err := procs[i].Process(nil, pkt)
		if err != nil {
			t.Fatalf("vector %q: hop %d before the one under test failed: %v", v.Name, i, err)
		}
		pkt = res.Packet
	}
	switch v.Mutation {
	case "flip-bit":
		pkt = bytes.Clone(pkt)
		pkt[v.Bit/8] ^= 1 << (v.Bit % 8)
	case "truncate":
		pkt = pkt[:v.Length]
	case "replay":
		if _, err := procs[v.Hop].Process(nil, pkt); err != nil {
			t.Fatalf("vector %q: first processing failed: %v", v.Name, err)
		}
	default:
		t.Fatalf("vector %q: unknown mutation %q", v.Name, v.Mutation)
	}
	for i := v.Hop; i < len(procs); i++ {
		res, err := procs[i].Process(nil, pkt)
		if err != nil {
			if i != v.Hop && v.Mutation != "flip-bit" {
				t.Fatalf("vector %q: failed at hop %d, not %d", v.Name, i, v.Hop)
			}
			return err
		}
		pkt = res.Packet
	}
	return nil
}

// matchesError reports whether err is the sentinel whose text is want.
func matchesError(err error, want string) bool {
	for _, s := range []error{ErrPacketSize, ErrAuthentication, ErrUnknownVersion, ErrPayload, ErrReplay, ErrReply} {
		if s.Error() == want {
			return errors.Is(err, s)
		}
	}
	return false
}

func newVector(name, kind string, size PacketSize, hops int, msg []byte) vector {
	dest := sha256.Sum256([]byte("destination " + name))
	id := sha256.Sum256([]byte("surb id " + name))
	if kind == "forward" {
		clear(id[:])
	}
	return vector{
		Name: name, Kind: kind, Size: size.String(), Hops: vectorHops(hops),
		Destination: hex.EncodeToString(dest[:]), SURBID: hex.EncodeToString(id[:SURBIDSize]),
		Message: hex.EncodeToString(msg), RandLabel: "vector " + name,
	}
}

// generateVectors is the list the file holds; -update fills in outputs.
func generateVectors(t *testing.T) vectorFile {
	msg := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + 3)
		}
		return b
	}
	var vs []vector
	for hops := 1; hops <= MaxHops; hops++ {
		vs = append(vs, newVector(fmt.Sprintf("regular %d hops", hops), "forward", RegularPacket, hops, msg(1000)))
	}
	for _, s := range []PacketSize{AckPacket, Extended8Packet, Extended16Packet, Extended32Packet} {
		vs = append(vs, newVector(fmt.Sprintf("%v 4 hops", s), "forward", s, 4, msg(s.PlaintextLen())))
	}
	vs = append(vs, newVector("surb reply 4 hops", "surb", RegularPacket, 4, msg(500)))
	vs = append(vs, newVector("surb reply 1 hop", "surb", RegularPacket, 1, msg(0)))
	wrong := newVector("regular 3 hops version 258", "forward", RegularPacket, 3, msg(10))
	wrong.Version = 258
	wrong.Hop, wrong.Error = 0, ErrUnknownVersion.Error()
	vs = append(vs, wrong)

	base := "regular 4 hops"
	neg := func(name, mutation string, bit, length, hop int, err error) vector {
		return vector{Name: name, Kind: "negative", Base: base, Mutation: mutation, Bit: bit, Length: length, Hop: hop, Error: err.Error()}
	}
	vs = append(vs,
		neg("flipped alpha bit at hop 0", "flip-bit", 5, 0, 0, ErrAuthentication),
		neg("flipped alpha top bit at hop 0", "flip-bit", 255, 0, 0, ErrAuthentication),
		neg("flipped MAC bit at hop 1", "flip-bit", 32*8+3, 0, 1, ErrAuthentication),
		neg("flipped routing bit at hop 2", "flip-bit", 200*8+1, 0, 2, ErrAuthentication),
		neg("flipped payload bit, detected at the last hop", "flip-bit", 1000*8+6, 0, 0, ErrPayload),
		neg("truncated packet", "truncate", 0, RegularPacket.Len()-1, 0, ErrPacketSize),
		neg("header only", "truncate", 0, HeaderSize, 1, ErrPacketSize),
		neg("replayed at hop 1", "replay", 0, 0, 1, ErrReplay),
	)
	return vectorFile{
		Comment: "peapod Sphinx test vectors. Regenerate with: go test ./sphinx -run TestVectors -update",
		Vectors: vs,
	}
}

func TestVectors(t *testing.T) {
	if *update {
		vf := generateVectors(t)
		for i := range vf.Vectors {
			v := &vf.Vectors[i]
			if v.Kind == "negative" {
				continue
			}
			pkt, surbBytes, key := buildVector(t, v)
			v.Packet = hex.EncodeToString(pkt)
			v.SURB = hex.EncodeToString(surbBytes)
			steps, hop, err := runVector(t, v, pkt, key)
			v.Steps = steps
			if (err != nil) != (v.Error != "") || (err != nil && (!matchesError(err, v.Error) || hop != v.Hop)) {
				t.Fatalf("vector %q: hop %d err %v, want %q at hop %d", v.Name, hop, err, v.Error, v.Hop)
			}
		}
		out, err := json.MarshalIndent(vf, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsPath, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	raw, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("%v (generate it with -update)", err)
	}
	var vf vectorFile
	if err := json.Unmarshal(raw, &vf); err != nil {
		t.Fatal(err)
	}
	byName := map[string]*vector{}
	for i := range vf.Vectors {
		byName[vf.Vectors[i].Name] = &vf.Vectors[i]
	}
	kinds := map[string]int{}
	for i := range vf.Vectors {
		v := &vf.Vectors[i]
		kinds[v.Kind]++
		t.Run(v.Name, func(t *testing.T) {
			if v.Kind == "negative" {
				base := byName[v.Base]
				if base == nil {
					t.Fatalf("unknown base %q", v.Base)
				}
				err := runNegative(t, v, base)
				if !matchesError(err, v.Error) {
					t.Fatalf("err = %v, want %q", err, v.Error)
				}
				return
			}
			pkt, surbBytes, key := buildVector(t, v)
			if hex.EncodeToString(pkt) != v.Packet {
				t.Fatal("building the packet gives different bytes than the vector")
			}
			if hex.EncodeToString(surbBytes) != v.SURB {
				t.Fatal("building the SURB gives different bytes than the vector")
			}
			steps, hop, err := runVector(t, v, pkt, key)
			if v.Error != "" {
				if !matchesError(err, v.Error) || hop != v.Hop {
					t.Fatalf("hop %d err %v, want %q at hop %d", hop, err, v.Error, v.Hop)
				}
			} else if err != nil {
				t.Fatalf("hop %d: %v", hop, err)
			}
			if len(steps) != len(v.Steps) {
				t.Fatalf("%d steps, vector has %d", len(steps), len(v.Steps))
			}
			for i := range steps {
				if steps[i] != v.Steps[i] {
					t.Fatalf("hop %d: got %+v, vector has %+v", i, steps[i], v.Steps[i])
				}
			}
		})
	}
	if kinds["forward"] < 9 || kinds["surb"] < 1 || kinds["negative"] < 5 {
		t.Fatalf("vector file is missing cases: %v", kinds)
	}
}
