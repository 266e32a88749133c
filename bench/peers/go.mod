module github.com/peapod-mixnet/peapod/bench/peers

go 1.26.0

require (
	github.com/btcsuite/btcd/btcec/v2 v2.1.0
	github.com/lightningnetwork/lightning-onion v1.2.1-0.20240712235311-98bd56499dfb
	github.com/peapod-mixnet/peapod v0.0.0
)

require (
	filippo.io/edwards25519 v1.2.0 // indirect
	github.com/aead/chacha20 v0.0.0-20180709150244-8b13a72661da // indirect
	github.com/btcsuite/btcd v0.22.0-beta.0.20220207191057-4dc4ff7963b4 // indirect
	github.com/btcsuite/btclog v0.0.0-20170628155309-84c8d2346e9f // indirect
	github.com/decred/dcrd/dcrec/secp256k1/v4 v4.0.1 // indirect
	golang.org/x/crypto v0.59.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)

replace github.com/peapod-mixnet/peapod => ../..
