//go:build !linux

package capture

import "errors"

// Capture records the TCP segments on an interface; it needs Linux.
type Capture struct{}

var errNotLinux = errors.New("capture: packet capture needs Linux (AF_PACKET)")

// Available reports that a capture cannot run here.
func Available() error { return errNotLinux }

// Start fails: a capture needs Linux.
func Start(Config) (*Capture, error) { return nil, errNotLinux }

// Stop returns nothing.
func (c *Capture) Stop() ([]Segment, Stats, error) { return nil, Stats{}, errNotLinux }
