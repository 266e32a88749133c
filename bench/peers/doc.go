// Package peers benchmarks peapod's per-hop Sphinx processing side by side
// with other Go Sphinx implementations. It is a module of its own, so that the
// main module never depends on the implementations it is compared with, and it
// has no code outside its tests: run
//
//	cd bench/peers && go test -run '^$' -bench . -benchmem -count 3
//
// Every benchmark reports its cost as a multiple of BenchmarkX25519Floor
// ("x-floor"), the two X25519 scalar multiplications any Sphinx hop on that
// curve computes, measured once in the same process before the timed loops,
// so the ratios survive a noisy machine. README.md has the figures and how to
// read them: the implementations do different work per hop.
package peers
