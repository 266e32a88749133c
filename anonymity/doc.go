// Package anonymity measures how much a peapod network hides, from the
// view of a global passive adversary: one who sees every packet on every
// link (its time, its link and its size) and nothing inside it.
//
// The input is a [Trace]: the nodes of the network ([Node]: clients,
// gateways, mixnodes by layer) and the packets seen on the links between
// them ([Event]), each with the size class an observer learns from its
// length (data or other: acks and control frames are smaller). Package
// anonymity/capture records such a trace from a running network on the
// wire; package anonymity/measure runs the network and writes the report.
//
// One estimator per file, each a pure function of a trace:
//
//   - [SenderEntropy] (entropy.go): Loopix's per-message sender entropy.
//     The adversary follows every data packet through the stratified
//     topology; at each node it keeps the mean sender distribution of the
//     packets inside (with exponential delays every packet inside is
//     equally likely to leave next), so a packet leaving a node carries
//     that mean. The entropy of a delivered packet's distribution, in
//     bits, is the sender anonymity of its message; log2 of the number of
//     senders is the most it can be.
//   - [TimingAttack] (timing.go): the best simple timing attack, which
//     matches each delivered packet to the entry packet whose time before
//     it is the most likely under the delay the senders chose, and its
//     success rate beside a random guess's.
//   - [OrderAttack] (order.go): follows every packet on the assumption
//     that nodes forward in the order of arrival, which they do without
//     delays; the pool estimator's exponential model leaves this out.
//   - [Unobservability] (unobservability.go): whether the adversary can
//     tell when a client sends real messages: the Kolmogorov-Smirnov
//     statistic between its inter-packet times idle and busy, and the
//     accuracy of a threshold classifier on the packet count of a window.
//   - [DelayConformance] (conformance.go): the per-hop delays the nodes
//     actually applied, tested against the exponential the senders chose
//     (one-sample KS).
//
// The statistics they share (KS distances and p-values, percentiles) are
// in stats.go.
package anonymity
