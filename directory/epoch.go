package directory

import (
	"errors"
	"fmt"
	"time"

	"github.com/peapod-mixnet/peapod/address"
)

// Epochs and Sphinx key rotations.
//
// Time is cut into epochs of equal length from a genesis instant: epoch n
// runs from Genesis + n·EpochLength up to the start of epoch n+1. Every
// RotationEpochs epochs make a key rotation: rotation r is epochs
// r·RotationEpochs to (r+1)·RotationEpochs − 1, and every node has one
// Sphinx key per rotation. The rules are Nym's (its nym-node key rotation
// controller):
//
//   - a node makes the key of rotation r+1 and announces it (registers it)
//     when the last epoch of rotation r begins, so that every topology
//     served during rotation r+1 can list it;
//   - packets are built with the keys of the rotation the sender's topology
//     is in, and the frame's key-rotation byte names that rotation's parity;
//   - a node keeps the key of rotation r for one epoch after rotation r
//     ends (the grace epoch), for the packets and reply SURBs made for it
//     that are still under way, then wipes it.
//
// So a node holds at most two keys at a time, of consecutive rotations (one
// odd, one even, which the key-rotation byte tells apart), provided a
// rotation lasts at least two epochs ([MinRotationEpochs]). A key lives
// RotationEpochs+2 epochs ([Schedule.KeyLifetime]): announced one epoch
// ahead, current for its rotation, kept for the grace epoch. Reply SURBs
// are made with the next keys once they are announced, so a key receives
// packets over its whole life, which is what its replay filter is sized
// for.
//
// The genesis is a fixed instant (the Unix epoch by default), so that every
// party computes the same epoch numbers from the length alone, with no state
// to keep or agree on.

// Schedule defaults.
const (
	// DefaultEpochLength is the length of an epoch: Nym's.
	DefaultEpochLength = time.Hour
	// DefaultRotationEpochs is how many epochs a key rotation lasts. Nym
	// rotates every 24 epochs; peapod every 6 (6 hours), so that a replay
	// filter sized for a key's whole life (8 hours) stays small (about 43 MB
	// at 500 packets a second) and a stolen key opens less recorded
	// traffic.
	DefaultRotationEpochs = 6
	// MinRotationEpochs is the shortest rotation: with one epoch a node
	// would hold three keys at once (the previous one in its grace epoch,
	// the current one and the next one announced), and the key-rotation
	// byte could not tell two of them apart.
	MinRotationEpochs = 2
	// MinEpochLength keeps a network from spinning: tests run epochs of a
	// second or two.
	MinEpochLength = 500 * time.Millisecond
	// MaxEpochLength bounds an epoch (a week).
	MaxEpochLength = 7 * 24 * time.Hour
	// MaxRotationEpochs bounds a rotation.
	MaxRotationEpochs = 1000
)

// DefaultGenesis is the default start of epoch 0: the Unix epoch.
var DefaultGenesis = time.Unix(0, 0)

// Schedule is a network's timetable of epochs and key rotations. A
// [Topology] carries it as [EpochInfo].
type Schedule struct {
	// Genesis is when epoch 0 began.
	Genesis time.Time
	// EpochLength is the length of every epoch.
	EpochLength time.Duration
	// RotationEpochs is the number of epochs a key rotation lasts.
	RotationEpochs int
}

// DefaultSchedule is the schedule of a network that sets none.
func DefaultSchedule() Schedule {
	return Schedule{Genesis: DefaultGenesis, EpochLength: DefaultEpochLength, RotationEpochs: DefaultRotationEpochs}
}

// Validate reports whether s is usable.
func (s Schedule) Validate() error {
	switch {
	case s.EpochLength < MinEpochLength || s.EpochLength > MaxEpochLength:
		return fmt.Errorf("directory: epoch length %s is out of range %s..%s", s.EpochLength, MinEpochLength, MaxEpochLength)
	case s.RotationEpochs < MinRotationEpochs || s.RotationEpochs > MaxRotationEpochs:
		return fmt.Errorf("directory: a key rotation of %d epochs is out of range %d..%d", s.RotationEpochs, MinRotationEpochs, MaxRotationEpochs)
	}
	return nil
}

// Epoch is the number of the epoch under way at t (0 before genesis).
func (s Schedule) Epoch(t time.Time) uint64 {
	d := t.Sub(s.Genesis)
	if d < 0 {
		return 0
	}
	return uint64(d / s.EpochLength)
}

// EpochStart is when epoch e begins.
func (s Schedule) EpochStart(e uint64) time.Time {
	return s.Genesis.Add(time.Duration(e) * s.EpochLength)
}

// NextEpoch is when the epoch after the one under way at t begins.
func (s Schedule) NextEpoch(t time.Time) time.Time {
	if t.Before(s.Genesis) {
		return s.Genesis
	}
	return s.EpochStart(s.Epoch(t) + 1)
}

// Rotation is the key rotation epoch e belongs to.
func (s Schedule) Rotation(e uint64) uint32 { return uint32(e / uint64(s.RotationEpochs)) }

// RotationAt is the key rotation under way at t.
func (s Schedule) RotationAt(t time.Time) uint32 { return s.Rotation(s.Epoch(t)) }

// RotationStart is when key rotation r begins.
func (s Schedule) RotationStart(r uint32) time.Time {
	return s.EpochStart(uint64(r) * uint64(s.RotationEpochs))
}

// KeyAnnounced is when nodes make and register their key of rotation r:
// when the last epoch of rotation r−1 begins.
func (s Schedule) KeyAnnounced(r uint32) time.Time {
	if r == 0 {
		return s.Genesis
	}
	return s.RotationStart(r).Add(-s.EpochLength)
}

// KeyExpires is when nodes wipe their key of rotation r: at the end of the
// grace epoch that follows the rotation. A packet or SURB made for the key
// is refused from then on.
func (s Schedule) KeyExpires(r uint32) time.Time {
	return s.RotationStart(r + 1).Add(s.EpochLength)
}

// KeyLifetime is how long a node holds each key, from its announcement to
// its expiry: RotationEpochs+2 epochs. It bounds the life of a reply SURB,
// and a key's replay filter is sized for it.
func (s Schedule) KeyLifetime() time.Duration {
	return time.Duration(s.RotationEpochs+2) * s.EpochLength
}

// Holds reports whether a node holds its key of rotation r at t.
func (s Schedule) Holds(r uint32, t time.Time) bool {
	return !t.Before(s.KeyAnnounced(r)) && t.Before(s.KeyExpires(r))
}

// HeldRotations lists, oldest first, the rotations whose keys a node holds
// at t: the current one, with the previous one during its grace epoch or
// the next one during the current rotation's last epoch (never both).
func (s Schedule) HeldRotations(t time.Time) []uint32 {
	r := s.RotationAt(t)
	var out []uint32
	if r > 0 && s.Holds(r-1, t) {
		out = append(out, r-1)
	}
	out = append(out, r)
	if s.Holds(r+1, t) {
		out = append(out, r+1)
	}
	return out
}

// Info describes epoch e as a topology carries it.
func (s Schedule) Info(e uint64) EpochInfo {
	return EpochInfo{
		Number:         e,
		Start:          s.EpochStart(e).UnixNano(),
		Length:         int64(s.EpochLength),
		RotationEpochs: s.RotationEpochs,
		Rotation:       s.Rotation(e),
	}
}

// EpochInfo is the epoch a [Topology] was made in and the network's
// timetable: everything a node or a client needs to work out which keys are
// held when. Times are unix nanoseconds, durations nanoseconds.
type EpochInfo struct {
	// Number is the epoch's number, from 0 at the network's genesis.
	Number uint64 `json:"number"`
	// Start is when the epoch began; the next begins Length later.
	Start int64 `json:"start"`
	// Length is the length of every epoch.
	Length int64 `json:"length"`
	// RotationEpochs is the number of epochs each Sphinx key rotation lasts.
	RotationEpochs int `json:"rotation_epochs"`
	// Rotation is the key rotation the epoch belongs to, Number /
	// RotationEpochs: the keys packets are built with.
	Rotation uint32 `json:"rotation"`
}

// Schedule returns the timetable e describes, or an error naming the field
// that does not add up.
func (e EpochInfo) Schedule() (Schedule, error) {
	s := Schedule{EpochLength: time.Duration(e.Length), RotationEpochs: e.RotationEpochs}
	if err := s.Validate(); err != nil {
		return Schedule{}, err
	}
	if e.Rotation != uint32(e.Number/uint64(e.RotationEpochs)) || e.Number/uint64(e.RotationEpochs) > 1<<32-1 {
		return Schedule{}, fmt.Errorf("directory: epoch %d is not in rotation %d", e.Number, e.Rotation)
	}
	if e.Number > uint64(1<<62)/uint64(e.Length) {
		return Schedule{}, fmt.Errorf("directory: epoch number %d is out of range", e.Number)
	}
	s.Genesis = time.Unix(0, e.Start-int64(e.Number)*e.Length)
	return s, nil
}

// Next reports when the epoch after e begins.
func (e EpochInfo) Next() time.Time { return time.Unix(0, e.Start+e.Length) }

// SphinxKey is one of a node's Sphinx public keys: its key of one rotation.
type SphinxKey struct {
	// Rotation is the key rotation the key is for.
	Rotation uint32 `json:"rotation"`
	// Key is the base58 X25519 public key.
	Key string `json:"key"`
}

// NewSphinxKey returns the listing of key as the key of rotation r.
func NewSphinxKey(r uint32, key [KeySize]byte) SphinxKey {
	return SphinxKey{Rotation: r, Key: address.EncodeKey(key[:])}
}

// MaxSphinxKeys bounds the keys a node lists: it holds at most two at a
// time.
const MaxSphinxKeys = 2

// errNoSphinxKeys is the error of an empty key list.
var errNoSphinxKeys = errors.New("directory: sphinx_keys is empty")

// checkSphinxKeys checks a node's list of keys: one to MaxSphinxKeys keys,
// each valid, of consecutive rotations in increasing order.
func checkSphinxKeys(keys []SphinxKey) error {
	if len(keys) == 0 {
		return errNoSphinxKeys
	}
	if len(keys) > MaxSphinxKeys {
		return fmt.Errorf("directory: sphinx_keys lists %d keys, at most %d allowed", len(keys), MaxSphinxKeys)
	}
	for i, k := range keys {
		if i > 0 && k.Rotation != keys[i-1].Rotation+1 {
			return fmt.Errorf("directory: sphinx_keys rotations %d and %d are not consecutive", keys[i-1].Rotation, k.Rotation)
		}
		if _, err := parseKey(fmt.Sprintf("sphinx_keys[%d].key", i), k.Key); err != nil {
			return err
		}
	}
	return nil
}

// sphinxKeyFor returns the key of rotation r from keys, parsed.
func sphinxKeyFor(keys []SphinxKey, r uint32) ([KeySize]byte, bool) {
	for _, k := range keys {
		if k.Rotation == r {
			key, err := parseKey("sphinx key", k.Key)
			return key, err == nil
		}
	}
	return [KeySize]byte{}, false
}
