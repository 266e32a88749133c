package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// Parsed is what Parse found on a command line.
type Parsed struct {
	// Args are the positional arguments, in order.
	Args []string
	// Set holds the names of the flags given on the command line.
	Set map[string]bool
}

// Parse fills cfg from the TOML file named by --config, if any (read with
// Load), and then from the flags in args, which win. bind registers the
// command's flags on a flag set, bound to the fields of a config (and, for
// flags that are not in the file, to the command's own variables); Parse
// adds --config and --version.
//
// Flags may follow positional arguments (`client kv get KEY --provider
// URL`); "--" ends the flags, so a positional argument that starts with a
// dash goes after it. Parse returns flag.ErrHelp after -h (the usage
// printed), ErrVersion after --version (the version printed on Stdout),
// ErrReported when the flag package printed the problem, and otherwise an
// error that names the command; Command.Status turns each into an exit
// status.
func Parse[T any](cmd Command, args []string, cfg *T, bind func(*flag.FlagSet, *T)) (Parsed, error) {
	newFlagSet := func(c *T, configPath *string, version *bool, out io.Writer) *flag.FlagSet {
		fs := flag.NewFlagSet(cmd.Name, flag.ContinueOnError)
		fs.SetOutput(out)
		fs.Usage = func() {
			if cmd.Usage != "" {
				fmt.Fprintln(out, strings.TrimRight(cmd.Usage, "\n"))
				fmt.Fprintln(out)
			}
			fmt.Fprintf(out, "flags of %s:\n", cmd.Name)
			fs.PrintDefaults()
		}
		fs.StringVar(configPath, "config", "", "TOML configuration `file`; flags override it")
		fs.BoolVar(version, "version", false, "print the version and exit")
		bind(fs, c)
		return fs
	}
	// First pass, on a scratch copy: check the flags and find --config.
	scratch := *cfg
	var configPath string
	var version bool
	fs := newFlagSet(&scratch, &configPath, &version, cmd.Stderr)
	if _, err := parseInterspersed(fs, args); err != nil {
		if err == flag.ErrHelp {
			return Parsed{}, err
		}
		return Parsed{}, ErrReported
	}
	if version {
		fmt.Fprintln(cmd.Stdout, Version(cmd.Name))
		return Parsed{}, ErrVersion
	}
	if configPath != "" {
		if err := Load(cmd.Name, configPath, cfg); err != nil {
			return Parsed{}, err
		}
	}
	// Second pass: the flags given on the command line override the file.
	fs = newFlagSet(cfg, new(string), new(bool), io.Discard)
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return Parsed{}, err
	}
	p := Parsed{Args: rest, Set: map[string]bool{}}
	fs.Visit(func(f *flag.Flag) { p.Set[f.Name] = true })
	return p, nil
}

// parseInterspersed parses the flags in args wherever they are and returns
// the positional arguments. The flag package stops at the first positional
// argument; this resumes after it, until "--", after which everything is
// positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// StringsVar registers a repeatable flag that collects its values into
// *p. Given on the command line, its values replace those *p held (from
// the file); each further use appends one.
func StringsVar(fs *flag.FlagSet, p *[]string, name, usage string) {
	fs.Var(&stringsFlag{p: p}, name, usage)
}

type stringsFlag struct {
	p   *[]string
	set bool // whether the command line has replaced the file's values
}

func (f *stringsFlag) String() string {
	if f.p == nil {
		return ""
	}
	return strings.Join(*f.p, ", ")
}

func (f *stringsFlag) Set(v string) error {
	if !f.set {
		*f.p, f.set = nil, true
	}
	*f.p = append(*f.p, v)
	return nil
}

// NoArgs returns an error naming the first positional argument of p, for
// a command that takes none.
func (c Command) NoArgs(p Parsed) error {
	if len(p.Args) > 0 {
		return c.Errorf("unexpected argument %q (every setting is a flag: %s -h lists them)", p.Args[0], c.Name)
	}
	return nil
}
