package directory

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestParseDescriptorRoundTrip(t *testing.T) {
	for _, n := range []testNode{newMixnode(t, 1), newMixnode(t, 3), newGateway(t)} {
		d := n.desc
		d.Timestamp = 1700000000123456789
		body, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseDescriptor(body)
		if err != nil {
			t.Fatalf("ParseDescriptor(%s): %v", body, err)
		}
		if !reflect.DeepEqual(got, d) {
			t.Errorf("ParseDescriptor(%s) = %+v, want %+v", body, got, d)
		}
		// Whitespace around and inside is fine.
		spaced := " \n" + strings.ReplaceAll(string(body), ",", " ,\t") + "\n"
		if got, err := ParseDescriptor([]byte(spaced)); err != nil || !reflect.DeepEqual(got, d) {
			t.Errorf("ParseDescriptor(%q) = %+v, %v", spaced, got, err)
		}
	}
}

func TestDescriptorWireForm(t *testing.T) {
	m := newMixnode(t, 2).desc
	m.Timestamp = 42
	body, _ := json.Marshal(m)
	want := `{"role":"mixnode","layer":2,"address":"` + m.Address + `","identity":"` + m.Identity +
		`","sphinx_keys":[{"rotation":0,"key":"` + m.SphinxKeys[0].Key + `"}],"noise_key":"` + m.NoiseKey + `","timestamp":42}`
	if string(body) != want {
		t.Errorf("mixnode descriptor encodes as\n%s\nwant\n%s", body, want)
	}
	g := newGateway(t).desc
	g.Timestamp = 42
	body, _ = json.Marshal(g)
	want = `{"role":"gateway","address":"` + g.Address + `","client_address":"` + g.ClientAddress +
		`","identity":"` + g.Identity + `","sphinx_keys":[{"rotation":0,"key":"` + g.SphinxKeys[0].Key + `"}],"noise_key":"` + g.NoiseKey + `","timestamp":42}`
	if string(body) != want {
		t.Errorf("gateway descriptor encodes as\n%s\nwant\n%s", body, want)
	}
	// A node without a Noise key leaves the field out, and is valid.
	g.NoiseKey = ""
	body, _ = json.Marshal(g)
	if strings.Contains(string(body), "noise_key") {
		t.Errorf("a descriptor without a Noise key encodes as %s", body)
	}
	if _, err := ParseDescriptor(body); err != nil {
		t.Errorf("a descriptor without a Noise key is refused: %v", err)
	}
}

func TestDescriptorValidateNamesTheField(t *testing.T) {
	good := newGateway(t).desc
	if err := good.Validate(); err != nil {
		t.Fatalf("a fresh gateway descriptor is invalid: %v", err)
	}
	for field, edit := range map[string]func(*Descriptor){
		"address":              func(d *Descriptor) { d.Address = "example.org:1" },
		"client_address":       func(d *Descriptor) { d.ClientAddress = "tcp://127.0.0.1:1" },
		"identity":             func(d *Descriptor) { d.Identity = "abc" },
		"sphinx_keys[0].key":   func(d *Descriptor) { d.SphinxKeys = []SphinxKey{{Key: "abc"}} },
		"sphinx_keys is empty": func(d *Descriptor) { d.SphinxKeys = nil },
		"not consecutive": func(d *Descriptor) {
			d.SphinxKeys = []SphinxKey{d.SphinxKeys[0], {Rotation: 2, Key: d.SphinxKeys[0].Key}}
		},
		"at most 2": func(d *Descriptor) {
			k := d.SphinxKeys[0]
			d.SphinxKeys = []SphinxKey{k, {Rotation: 1, Key: k.Key}, {Rotation: 2, Key: k.Key}}
		},
		"noise_key": func(d *Descriptor) { d.NoiseKey = d.NoiseKey + "2" },
		"role":      func(d *Descriptor) { d.Role = "mixer" },
	} {
		d := good
		edit(&d)
		err := d.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), "directory: ") || !strings.Contains(err.Error(), field) {
			t.Errorf("bad %s: Validate() = %v, want a directory error naming %q", field, err, field)
		}
	}
}

func TestTopologyValidate(t *testing.T) {
	m, g := newMixnode(t, 1).desc, newGateway(t).desc
	valid := func() Topology {
		return Topology{
			Mixnodes: []Mixnode{{Layer: m.Layer, Address: m.Address, Identity: m.Identity, SphinxKeys: m.SphinxKeys, NoiseKey: m.NoiseKey}},
			Gateways: []Gateway{{Address: g.Address, ClientAddress: g.ClientAddress, Identity: g.Identity, SphinxKeys: g.SphinxKeys}},
			Epoch:    testSchedule().Info(0),
		}
	}
	topo := valid()
	if err := topo.Validate(); err != nil {
		t.Fatalf("valid topology: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(*Topology)
		want string
	}{
		"layer 0":            {func(t *Topology) { t.Mixnodes[0].Layer = 0 }, "directory: mixnode 0 (" + m.Identity + "): layer 0"},
		"layer 4":            {func(t *Topology) { t.Mixnodes[0].Layer = 4 }, "layer 4 is out of range"},
		"mixnode address":    {func(t *Topology) { t.Mixnodes[0].Address = "x" }, "mixnode 0"},
		"mixnode identity":   {func(t *Topology) { t.Mixnodes[0].Identity = "" }, "identity is missing"},
		"mixnode sphinx key": {func(t *Topology) { t.Mixnodes[0].SphinxKeys = []SphinxKey{{Key: "1"}} }, "sphinx_keys[0].key"},
		"no epoch":           {func(t *Topology) { t.Epoch = EpochInfo{} }, "directory: epoch: epoch length"},
		"rotation of 1":      {func(t *Topology) { t.Epoch.RotationEpochs = 1 }, "a key rotation of 1 epochs"},
		"gateway client URL": {func(t *Topology) { t.Gateways[0].ClientAddress = "" }, "directory: gateway 0 (" + g.Identity + "): client_address"},
		"gateway address":    {func(t *Topology) { t.Gateways[0].Address = "1.2.3.4:0" }, "port 0"},
		"gateway sphinx key": {func(t *Topology) { t.Gateways[0].SphinxKeys = nil }, "sphinx_keys is empty"},
		"mixnode noise key":  {func(t *Topology) { t.Mixnodes[0].NoiseKey = "1" }, "noise_key"},
		"gateway noise key":  {func(t *Topology) { t.Gateways[0].NoiseKey = m.Identity + "z" }, "directory: gateway 0 (" + g.Identity + "): noise_key"},
		"duplicate identity": {func(t *Topology) { t.Gateways[0].Identity = m.Identity }, "appears twice"},
	} {
		topo := valid()
		tc.edit(&topo)
		if err := topo.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate() = %v, want an error containing %q", name, err, tc.want)
		}
	}
}

// FuzzParseDescriptor checks that the decoder never panics and that what it
// accepts encodes to a descriptor that decodes to the same value.
func FuzzParseDescriptor(f *testing.F) {
	for _, n := range []testNode{newMixnode(f, 1), newMixnode(f, 3), newGateway(f)} {
		d := n.desc
		d.Timestamp = 1700000000000000000
		body, err := json.Marshal(d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
		f.Add(body[:len(body)/2])
		f.Add([]byte(strings.Replace(string(body), `"role"`, `"role":"gateway","role"`, 1)))
	}
	f.Add([]byte(`{"role":"gateway","layer":null,"address":"[::1]:1","client_address":"wss://h/p","identity":"11111111111111111111111111111111","sphinx_keys":[{"rotation":7,"key":"11111111111111111111111111111111"}],"timestamp":-1}`))
	f.Add([]byte(`{"role":"mixnode","layer":1,"address":"1.2.3.4:5","identity":"11111111111111111111111111111111","sphinx_keys":[{"rotation":7,"key":"11111111111111111111111111111111","extra":1}],"timestamp":1}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"timestamp":1e3}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDescriptor(data)
		if err != nil {
			return
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("ParseDescriptor accepted %q, which Validate refuses: %v", data, err)
		}
		enc, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("encoding %+v: %v", d, err)
		}
		d2, err := ParseDescriptor(enc)
		if err != nil {
			t.Fatalf("ParseDescriptor accepted %q but not its re-encoding %q: %v", data, enc, err)
		}
		if !reflect.DeepEqual(d2, d) {
			t.Fatalf("round trip of %q: %+v, want %+v", data, d2, d)
		}
		enc2, _ := json.Marshal(d2)
		if string(enc2) != string(enc) {
			t.Fatalf("encoding is not stable: %q then %q", enc, enc2)
		}
	})
}
