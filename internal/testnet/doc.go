// Package testnet runs a peapod mixnet as separate processes on this
// machine, so that tests, the soak run and the end-to-end benchmark can
// prove the system's promises with the real binaries and real faults.
//
// [Build] builds cmd/mixnet, cmd/client, cmd/provider and the example
// plugins once per process. [Start] starts a [Network]: a directory,
// mixnodes (two per layer by default) and gateways (two), each a process on
// its own loopback ports, optionally with a fault-injecting relay (package
// relay) in front of every node's packet listener, and optionally with the
// mixnodes in network namespaces of their own ([Namespaces]). A test then
// adds a provider ([Network.StartProvider]) and clients
// ([Network.StartClient], `client run` processes driven over their
// WebSocket API through an [Endpoint]).
//
// Every [Process] can be stopped (SIGTERM), killed (SIGKILL), restarted on
// the same data and ports, and paused (SIGSTOP) and resumed. Its output
// goes to a log file in Network.LogDir, which [Process.WaitLog] reads to
// know when it is ready; the network samples every process's peak RSS
// (VmHWM) and CPU time from /proc, for itself and its children (plugins),
// and [Network.ResourceTable] prints them.
//
// A [Requester] sends provider requests (package envelope) and collects
// the replies by id into a [Tracker], which says what was lost, what came
// twice, and how long replies took.
//
// The scenario tests of this package are the system's acceptance tests;
// cmd/soak runs the network for minutes with steady traffic and random
// restarts, and cmd/e2ebench measures it.
package testnet
