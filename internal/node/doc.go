// Package node is the lifecycle that every mixnet node, mixnode and gateway
// alike, shares: the keys it keeps in its data folder and what it does with
// them over the life of the network.
//
// [LoadKeys] loads (or makes, on first start) a node's long-term keys: its
// ed25519 identity, which names it and signs its directory registrations,
// and its X25519 Noise static key, which authenticates its links to other
// nodes and which clients encrypt their gateway handshake to. Both keys live
// for as long as the node does; they are published in the node's signed
// registration (identity and noise_key) and from there in the topology.
package node
