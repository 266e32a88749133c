package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/anonymity/measure"
)

// fakeBin makes a folder with the files `mixnet measure` looks for.
func fakeBin(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"mixnet", "client"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestMeasureConfigGrid(t *testing.T) {
	m := defaultMeasureFile().Measure
	m.Bin = fakeBin(t)
	m.Delays, m.Cover, m.TimeScale = "0, 5ms,50ms", "off", 4
	c, err := measureConfig(m)
	if err != nil {
		t.Fatal(err)
	}
	if c.TimeScale != 4 {
		t.Errorf("time scale %g, want 4", c.TimeScale)
	}
	want := []measure.Cell{{Delay: 0}, {Delay: 5 * time.Millisecond}, {Delay: 50 * time.Millisecond}}
	if len(c.Grid) != len(want) {
		t.Fatalf("grid %v, want %v", c.Grid, want)
	}
	for i := range want {
		if c.Grid[i] != want[i] {
			t.Errorf("cell %d: %v, want %v", i, c.Grid[i], want[i])
		}
	}
	if c.Bin.Provider != "" {
		t.Errorf("provider %q found in a folder without one", c.Bin.Provider)
	}

	m.Short = true
	if c, err = measureConfig(m); err != nil || c.Clients != 6 || len(c.Grid) != 3 || c.Grid[2] != measure.DefaultCell {
		t.Errorf("--short: %d clients, grid %v, %v; want 6 clients and 3 cells ending at the defaults", c.Clients, c.Grid, err)
	}
}

func TestMeasureConfigRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		change func(*measureSection)
		says   string // what the message must name
	}{
		"cover":    {func(m *measureSection) { m.Cover = "sometimes" }, `--cover "sometimes"`},
		"delay":    {func(m *measureSection) { m.Delays = "15" }, `"15" is not a duration`},
		"negative": {func(m *measureSection) { m.Delays = "-5ms" }, `"-5ms" is negative`},
		"no bin":   {func(m *measureSection) { m.Bin = t.TempDir() }, "mixnet measure"},
		"scale":    {func(m *measureSection) { m.TimeScale = 0.5 }, "--time-scale 0.5"},
		"clients":  {func(m *measureSection) { m.Clients = 1 }, "--clients 1: want at least 3"},
		"rate":     {func(m *measureSection) { m.Rate = 0 }, "--rate 0: want a positive"},
		"busy":     {func(m *measureSection) { m.BusyRate = -1 }, "--busy-rate -1"},
		"duration": {func(m *measureSection) { m.Duration = 0 }, "--duration 0s"},
		"window":   {func(m *measureSection) { m.Window = 0 }, "--window 0s"},
		"probes":   {func(m *measureSection) { m.Probes = -1 }, "--probes -1"},
	} {
		m := defaultMeasureFile().Measure
		m.Bin = fakeBin(t)
		tc.change(&m)
		if _, err := measureConfig(m); err == nil || !strings.Contains(err.Error(), "mixnet measure") || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: err %v, want a mixnet measure error saying %s", name, err, tc.says)
		}
	}
}
