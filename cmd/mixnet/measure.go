package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/peapod-mixnet/peapod/anonymity/measure"
	"github.com/peapod-mixnet/peapod/internal/cli"
	"github.com/peapod-mixnet/peapod/internal/testnet"
)

// measureFile is the TOML file of `mixnet measure`.
type measureFile struct {
	Measure measureSection `toml:"measure"`
	Log     logSection     `toml:"log"`
}

// measureSection is its [measure] section; each key maps to the field of
// measure.Config documented there, or to a flag below.
type measureSection struct {
	Bin           string        `toml:"bin"`
	Dir           string        `toml:"dir"`
	Doc           string        `toml:"doc"`
	Chart         string        `toml:"chart"`
	Section       string        `toml:"section"`
	Write         bool          `toml:"write"`
	Short         bool          `toml:"short"`
	Clients       int           `toml:"clients"`
	Delays        string        `toml:"delays"`
	Cover         string        `toml:"cover"`
	Duration      time.Duration `toml:"duration"`
	Rate          float64       `toml:"rate"`
	ProviderShare float64       `toml:"provider_share"`
	NoProvider    bool          `toml:"no_provider"`
	Window        time.Duration `toml:"window"`
	BusyRate      float64       `toml:"busy_rate"`
	Probes        int           `toml:"probes"`
	TimeScale     float64       `toml:"time_scale"`
	Seed          uint64        `toml:"seed"`
	MixnodeArgs   string        `toml:"mixnode_args"`
}

func defaultMeasureFile() measureFile {
	return measureFile{
		Measure: measureSection{
			Doc: "docs/anonymity.md", Chart: "docs/anonymity.svg", Write: true,
			Clients: measure.DefaultClients, Delays: "0,5ms,15ms,50ms", Cover: "on,off",
			Duration: measure.DefaultDuration, Rate: measure.DefaultRate, ProviderShare: measure.DefaultProviderShare,
			Window: measure.DefaultWindow, BusyRate: measure.DefaultBusyRate, Probes: measure.DefaultProbes, TimeScale: 1,
		},
		Log: defaultLog(),
	}
}

func bindMeasureFlags(fs *flag.FlagSet, c *measureFile) {
	m := &c.Measure
	fs.StringVar(&m.Bin, "bin", m.Bin, "`folder` of the mixnet, client and provider binaries and plugins/ (default: this program's folder)")
	fs.StringVar(&m.Dir, "dir", m.Dir, "`folder` for the network's data and logs (default: a temporary folder, removed at the end)")
	fs.StringVar(&m.Doc, "doc", m.Doc, "Markdown `file` whose generated section gets the results")
	fs.StringVar(&m.Chart, "chart", m.Chart, "SVG `file` for the chart")
	fs.StringVar(&m.Section, "section", m.Section, "`name` of the generated section of -doc to replace (\"\": the main one)")
	fs.BoolVar(&m.Write, "write", m.Write, "write the results into -doc and -chart (false: print the section only)")
	fs.BoolVar(&m.Short, "short", m.Short, "the short mode of `make test`: 6 clients, 4 s a cell at time scale 2, 3 cells (no delay and 15ms without cover, 15ms with)")
	fs.IntVar(&m.Clients, "clients", m.Clients, "number of clients (`client run` processes)")
	fs.StringVar(&m.Delays, "delays", m.Delays, "comma-separated mean delays per hop of the grid (0: --no-delay)")
	fs.StringVar(&m.Cover, "cover", m.Cover, "cover traffic settings of the grid: on, off or on,off")
	fs.DurationVar(&m.Duration, "duration", m.Duration, "traffic per cell")
	fs.Float64Var(&m.Rate, "rate", m.Rate, "real messages a second per client: the load")
	fs.Float64Var(&m.ProviderShare, "provider-share", m.ProviderShare, "share of the messages that are requests to the provider")
	fs.BoolVar(&m.NoProvider, "no-provider", m.NoProvider, "run no provider: clients send only to each other")
	fs.DurationVar(&m.Window, "window", m.Window, "length of the watched client's busy and idle windows")
	fs.Float64Var(&m.BusyRate, "busy-rate", m.BusyRate, "the watched client's messages a second when busy")
	fs.IntVar(&m.Probes, "probes", m.Probes, "probe messages of each cell without cover, for the delay conformance")
	fs.Float64Var(&m.TimeScale, "time-scale", m.TimeScale, "run the network this many times slower (delays and cover gaps ×, rates ÷) so that a small machine carries the load; the results read as at scale 1 (see docs/anonymity.md)")
	fs.Uint64Var(&m.Seed, "seed", m.Seed, "seed of the traffic's random choices (0: random)")
	fs.StringVar(&m.MixnodeArgs, "mixnode-args", m.MixnodeArgs, "space-separated extra flags for every mixnode")
	c.Log.flags(fs)
}

// runMeasure is `mixnet measure`: it runs a network of processes with a
// global passive adversary watching every link and writes the anonymity it
// measures into docs/anonymity.md (see package anonymity/measure).
func runMeasure(args []string, stdout, stderr io.Writer) int {
	cmd := command("measure", stdout, stderr)
	cfg := defaultMeasureFile()
	if err := parseConfig(cmd, args, &cfg, bindMeasureFlags); err != nil {
		return cmd.Status(err)
	}
	log, err := cli.NewLogger(cmd.Name, stderr, cfg.Log.Level)
	if err != nil {
		return cmd.Status(err)
	}
	m := cfg.Measure
	mc, err := measureConfig(m)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return cli.ExitUsage
	}
	if m.Dir == "" {
		dir, err := os.MkdirTemp("", "peapod-measure-")
		if err != nil {
			log.Error().Err(err).Msg("cannot make a work folder")
			return cli.ExitError
		}
		defer os.RemoveAll(dir)
		m.Dir = dir
	}
	mc.Dir = m.Dir
	mc.Logf = func(format string, args ...any) { log.Info().Msg(fmt.Sprintf(format, args...)) }
	ctx, stop := cli.SignalContext(log, nil)
	defer stop()

	res, err := measure.Run(ctx, mc)
	if err != nil {
		log.Error().Err(err).Msg("measurement failed")
		return cli.ExitError
	}
	command := "bin/mixnet measure"
	if len(args) > 0 {
		command += " " + strings.Join(args, " ")
	}
	chartRef, _ := filepath.Rel(filepath.Dir(m.Doc), m.Chart)
	section := measure.Section(res, command, filepath.ToSlash(chartRef))
	if !m.Write {
		fmt.Fprint(stdout, section)
		return cli.ExitOK
	}
	if err := os.WriteFile(m.Chart, measure.Chart(res), 0o644); err != nil {
		log.Error().Err(err).Msg("writing the chart")
		return cli.ExitError
	}
	if err := measure.UpdateDoc(m.Doc, m.Section, section); err != nil {
		log.Error().Err(err).Msg("writing the results")
		return cli.ExitError
	}
	log.Info().Str("doc", m.Doc).Str("chart", m.Chart).Dur("took", res.Elapsed).Msg("results written")
	return cli.ExitOK
}

// measureConfig turns the section into a measure.Config (without Dir and
// Logf).
func measureConfig(m measureSection) (measure.Config, error) {
	bin, err := measureBinaries(m.Bin)
	if err != nil {
		return measure.Config{}, err
	}
	c := measure.Config{
		Bin: bin, Clients: m.Clients, Duration: m.Duration, Rate: m.Rate, ProviderShare: m.ProviderShare,
		NoProvider: m.NoProvider, Window: m.Window, BusyRate: m.BusyRate, Probes: m.Probes, Seed: m.Seed, TimeScale: m.TimeScale,
		MixnodeArgs: strings.Fields(m.MixnodeArgs),
	}
	if m.TimeScale < 1 || m.TimeScale > 100 {
		return c, fmt.Errorf("mixnet measure: --time-scale %g: want 1 to 100", m.TimeScale)
	}
	// The library reads a zero as its default; here every default is
	// filled in already, so a zero was asked for and is refused.
	switch {
	case m.Clients < 3:
		return c, fmt.Errorf("mixnet measure: --clients %d: want at least 3 (a watched client, a prober and a recipient)", m.Clients)
	case m.Rate <= 0:
		return c, fmt.Errorf("mixnet measure: --rate %g: want a positive number of messages a second per client", m.Rate)
	case m.BusyRate <= 0:
		return c, fmt.Errorf("mixnet measure: --busy-rate %g: want a positive number of messages a second", m.BusyRate)
	case m.Duration <= 0:
		return c, fmt.Errorf("mixnet measure: --duration %s: want a positive duration", m.Duration)
	case m.Window <= 0:
		return c, fmt.Errorf("mixnet measure: --window %s: want a positive duration", m.Window)
	case m.Probes < 0:
		return c, fmt.Errorf("mixnet measure: --probes %d: want 0 or more", m.Probes)
	}
	if m.Short {
		c.UseShortMode()
		return c, nil
	}
	var covers []bool
	for _, s := range strings.Split(m.Cover, ",") {
		switch strings.TrimSpace(s) {
		case "on":
			covers = append(covers, true)
		case "off":
			covers = append(covers, false)
		default:
			return c, fmt.Errorf("mixnet measure: --cover %q: want on, off or on,off", m.Cover)
		}
	}
	for _, s := range strings.Split(m.Delays, ",") {
		s = strings.TrimSpace(s)
		d, err := time.ParseDuration(s)
		if err != nil {
			if n, nerr := strconv.Atoi(s); nerr == nil && n == 0 {
				d, err = 0, nil
			}
		}
		switch {
		case err != nil:
			return c, fmt.Errorf("mixnet measure: --delays: %q is not a duration (write a unit, e.g. 15ms; 0 alone for no delay)", s)
		case d < 0:
			return c, fmt.Errorf("mixnet measure: --delays: %q is negative", s)
		}
		for _, cover := range covers {
			c.Grid = append(c.Grid, measure.Cell{Delay: d, Cover: cover})
		}
	}
	return c, nil
}

// measureBinaries finds the programs in dir, by default the folder of this
// executable (bin/ after `make build`).
func measureBinaries(dir string) (*testnet.Binaries, error) {
	if dir == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("mixnet measure: %w", err)
		}
		dir = filepath.Dir(exe)
	}
	b := &testnet.Binaries{
		Dir: dir, Mixnet: filepath.Join(dir, "mixnet"), Client: filepath.Join(dir, "client"),
		Provider: filepath.Join(dir, "provider"), Plugins: filepath.Join(dir, "plugins"),
	}
	for _, p := range []string{b.Mixnet, b.Client} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("mixnet measure: %s not found (run make build, or give --bin): %w", p, errors.Unwrap(err))
		}
	}
	if _, err := os.Stat(b.Provider); err != nil {
		b.Provider = ""
	}
	return b, nil
}
