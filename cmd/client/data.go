package main

import (
	"errors"
	"fmt"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/client"
)

// openClient makes a client on the data folder of cfg, telling apart the
// case of a folder another process (a running `client run`) holds.
func openClient(cfg client.Config) (*client.Client, error) {
	c, err := client.New(cfg)
	if errors.Is(err, client.ErrDataDirInUse) {
		return nil, fmt.Errorf("%w (is `client run` running on it?)", err)
	}
	return c, err
}

// readAddress reads the address of the client in dir without the network
// (so it works while the client runs), with advice when there is none.
func readAddress(dir string) (address.Address, error) {
	a, err := client.ReadAddress(dir)
	if errors.Is(err, client.ErrNotRegistered) {
		return a, fmt.Errorf("%w (run `client init --data %s`)", err, dir)
	}
	return a, err
}
