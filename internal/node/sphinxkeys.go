package node

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/keyfile"
	"github.com/peapod-mixnet/peapod/internal/replaystore"
	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// Replay filter sizing.
const (
	// DefaultPeakRate is the packet rate, per second, a key's replay filter
	// is sized for by default: with the default schedule (a key lives 8
	// hours) about 14.4 million tags, 43 MB a filter.
	DefaultPeakRate = 500
	// MinReplayCapacity is the smallest filter made (300 bytes at the
	// default false-positive rate), for schedules of seconds in tests.
	MinReplayCapacity = 100
	// MaxReplayCapacity bounds a filter (about 600 MB at the default
	// false-positive rate); a larger need is logged, and a filter made at
	// this size fills before its key expires.
	MaxReplayCapacity = 200_000_000
	// FillWarning is the share of a filter's capacity at which the node
	// warns that it receives more packets than the filter was sized for.
	FillWarning = 0.8
	// peakHeadroom is how much above the highest rate measured in the last
	// key's life a new key's filter is sized for.
	peakHeadroom = 1.25
)

// ErrNoKey means a packet names a key rotation the node holds no key for:
// it was made for a key that has expired (or one not announced yet).
var ErrNoKey = errors.New("node: no Sphinx key for the packet's key rotation")

// KeysConfig configures [OpenSphinxKeys]. Zero values take the documented
// defaults.
type KeysConfig struct {
	// DataDir holds the key and replay filter files. Required.
	DataDir string
	// Static gives the node one Sphinx key for ever (StaticKeyFile) and no
	// schedule: a node without a directory, for tests and benchmarks.
	Static bool
	// StaticCapacity sizes the static key's replay filter. Default
	// sphinx.DefaultReplayCapacity.
	StaticCapacity int
	// PeakRate is the packets a second each key's filter is sized for, over
	// the key's whole life (directory.Schedule.KeyLifetime); a
	// higher rate measured while the previous key lived raises it for the
	// next key. Default DefaultPeakRate.
	PeakRate float64
	// FalsePositiveRate is the filters' target share of fresh packets
	// wrongly refused as replays, at capacity. Default
	// sphinx.DefaultReplayFalsePositiveRate.
	FalsePositiveRate float64
	// SaveInterval is how often each filter is saved (see
	// replaystore.Saver); negative saves only on Close. Default one minute.
	SaveInterval time.Duration
	// Logger receives one line per key made, loaded or wiped, and the fill
	// warnings.
	Logger zerolog.Logger
}

// defaultSaveInterval is KeysConfig.SaveInterval's default.
const defaultSaveInterval = time.Minute

func (c *KeysConfig) applyDefaults() error {
	if c.StaticCapacity == 0 {
		c.StaticCapacity = sphinx.DefaultReplayCapacity
	}
	if c.PeakRate == 0 {
		c.PeakRate = DefaultPeakRate
	}
	if c.FalsePositiveRate == 0 {
		c.FalsePositiveRate = sphinx.DefaultReplayFalsePositiveRate
	}
	if c.SaveInterval == 0 {
		c.SaveInterval = defaultSaveInterval
	}
	switch {
	case c.DataDir == "":
		return errors.New("node: KeysConfig.DataDir is required")
	case c.StaticCapacity < 0:
		return fmt.Errorf("node: KeysConfig.StaticCapacity %d is negative", c.StaticCapacity)
	case !(c.PeakRate > 0) || math.IsInf(c.PeakRate, 0):
		return fmt.Errorf("node: KeysConfig.PeakRate %v is not a positive rate", c.PeakRate)
	case !(c.FalsePositiveRate > 0 && c.FalsePositiveRate < 1):
		return fmt.Errorf("node: KeysConfig.FalsePositiveRate %v is not between 0 and 1", c.FalsePositiveRate)
	case c.SaveInterval > 0 && c.SaveInterval < replaystore.MinInterval:
		return fmt.Errorf("node: KeysConfig.SaveInterval %s is below %s", c.SaveInterval, replaystore.MinInterval)
	}
	return nil
}

// MaxHeldKeys is the most keys a node holds at a time (the key-rotation
// byte tells two apart).
const MaxHeldKeys = directory.MaxSphinxKeys

// StaticRotation is the rotation number [SphinxKeys.Process] reports for
// the key of a static node.
const StaticRotation = math.MaxUint32

// rotationKey is the key of one rotation, with its replay filter.
type rotationKey struct {
	rotation uint32
	key      *sphinx.PrivateKey
	filter   *sphinx.ReplayFilter
	proc     *sphinx.Processor
	saver    *replaystore.Saver
	keyPath  string
	warned   atomic.Bool // the fill warning was logged
}

// SphinxKeys are a node's Sphinx keys, one per key rotation it holds (at
// most two: see directory.Schedule), each with a replay filter of its own
// that is saved beside it and dropped with it. Create them with
// [OpenSphinxKeys]; make the held set follow the clock with [SphinxKeys.Update]
// at every epoch boundary. Its methods are safe for concurrent use.
//
// Files, in the data folder:
//
//	sphinx-<R>.pem   the X25519 key of rotation R (PEM, 0600)
//	replay-<R>.bin   its replay filter (internal/replaystore)
//	schedule.json    the last schedule the node was given
//	sphinx.pem, replay.bin   the key and filter of a static node
//
// When a key's life ends its private key is overwritten in memory, and its
// file overwritten with zeros, synced and deleted, with its filter's file:
// from then on neither this node nor whoever takes its disk can peel the
// packets made for it. (On a copy-on-write or journaling file system the
// old blocks may survive the overwrite until the space is reused.)
type SphinxKeys struct {
	cfg KeysConfig
	log zerolog.Logger

	// updateMu serialises Update: the epoch clock and a fetched topology
	// may both call it at a boundary, and only one may load or make a key.
	updateMu sync.Mutex
	closed   bool // by Close; guarded by updateMu
	// updatedAt is the latest time an Update was for; guarded by updateMu.
	// An Update for an earlier time (its caller read the clock before
	// another Update crossed a boundary) is taken as one for updatedAt, so
	// that it never drops a key a later one made.
	updatedAt time.Time
	// mu is held for reading while a packet is peeled, and for writing
	// while the set changes, so that no key is wiped under a Process.
	mu     sync.RWMutex
	sched  directory.Schedule // zero until known; guarded by mu
	static *rotationKey       // the key of a static node
	keys   []*rotationKey     // held, oldest first; guarded by mu
	// current is the key of the rotation under way at the last Update
	// (nil if the node holds none): the one a packet that names no
	// rotation is tried with first. Guarded by mu.
	current *rotationKey

	// Packet rates, for sizing the filters of new keys.
	processed atomic.Uint64
	rateMu    sync.Mutex
	rateAt    time.Time // when processed was last sampled
	rateCount uint64    // processed at rateAt
	rates     []float64 // packets a second, per epoch, the latest last
}

// OpenSphinxKeys opens a node's Sphinx keys in cfg.DataDir. A static node
// loads (or makes) its one key. Otherwise the schedule saved in the folder,
// if any, is taken up and the keys held now loaded or made; a node that has
// never been given a schedule holds no key until [SphinxKeys.SetSchedule].
func OpenSphinxKeys(cfg KeysConfig, now time.Time) (*SphinxKeys, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	k := &SphinxKeys{cfg: cfg, log: cfg.Logger}
	if cfg.Static {
		rk, err := k.openStatic()
		if err != nil {
			return nil, err
		}
		k.static = rk
		return k, nil
	}
	sched, ok, err := loadSchedule(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if !ok {
		return k, nil
	}
	if _, err := k.SetSchedule(sched, now); err != nil {
		k.Close()
		return nil, err
	}
	return k, nil
}

// openStatic loads or makes the key and filter of a static node.
func (k *SphinxKeys) openStatic() (*rotationKey, error) {
	keyPath := filepath.Join(k.cfg.DataDir, StaticKeyFile)
	raw, _, err := keyfile.LoadOrCreate(keyPath, SphinxKeyPEMType, sphinx.KeySize, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("node: Sphinx key: %w", err)
	}
	key, err := sphinx.NewPrivateKey(raw)
	clear(raw)
	if err != nil {
		return nil, fmt.Errorf("node: Sphinx key: %w", err)
	}
	replayPath := filepath.Join(k.cfg.DataDir, StaticReplayFile)
	filter, err := replaystore.Load(replayPath, key.PublicKey(), k.cfg.StaticCapacity, k.cfg.FalsePositiveRate, k.log)
	if err != nil {
		key.Wipe()
		return nil, fmt.Errorf("node: %w", err)
	}
	return k.startKey(StaticRotation, key, filter, keyPath, replayPath)
}

// startKey assembles a rotationKey and starts its filter's periodic saves.
func (k *SphinxKeys) startKey(r uint32, key *sphinx.PrivateKey, filter *sphinx.ReplayFilter, keyPath, replayPath string) (*rotationKey, error) {
	rk := &rotationKey{
		rotation: r,
		key:      key,
		filter:   filter,
		proc:     sphinx.NewProcessor(key, filter),
		saver:    replaystore.NewSaver(replayPath, key.PublicKey(), filter, k.log),
		keyPath:  keyPath,
	}
	if err := rk.saver.Start(k.cfg.SaveInterval); err != nil {
		key.Wipe()
		return nil, fmt.Errorf("node: %w", err)
	}
	return rk, nil
}

// Static reports whether the node has one key for ever.
func (k *SphinxKeys) Static() bool { return k.static != nil }

// Schedule returns the schedule the keys follow, and false when none is
// known yet (or the node is static).
func (k *SphinxKeys) Schedule() (directory.Schedule, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.sched, k.sched.EpochLength != 0
}

// SetSchedule makes the keys follow s from now on, saves it in the data
// folder so that a restarted node follows it before it reaches the
// directory, and brings the held keys up to date (see Update). It reports
// whether the keys to announce changed. A static node ignores it.
func (k *SphinxKeys) SetSchedule(s directory.Schedule, now time.Time) (bool, error) {
	if k.static != nil {
		return false, nil
	}
	if err := s.Validate(); err != nil {
		return false, fmt.Errorf("node: %w", err)
	}
	k.mu.Lock()
	changed := k.sched != s
	if changed {
		k.sched = s
	}
	k.mu.Unlock()
	if changed {
		if err := saveSchedule(k.cfg.DataDir, s); err != nil {
			return false, err
		}
		k.log.Info().Dur("epoch_length", s.EpochLength).Int("rotation_epochs", s.RotationEpochs).
			Uint32("rotation", s.RotationAt(now)).Msg("following the network's schedule")
	}
	return k.Update(now)
}

// Update makes the held keys those the schedule holds at now: it loads or
// makes the current key and, once it is announced, the next one; it wipes
// every key whose life has ended, in memory and on disk, with its filter.
// It reports whether the keys to announce (Announce) changed. Call it at
// every epoch boundary: the set changes only then. It does nothing for a
// static node or before the schedule is known.
func (k *SphinxKeys) Update(now time.Time) (bool, error) {
	if k.static != nil {
		return false, nil
	}
	k.updateMu.Lock()
	defer k.updateMu.Unlock()
	if k.closed {
		return false, nil
	}
	if now.Before(k.updatedAt) {
		now = k.updatedAt
	}
	k.updatedAt = now
	k.sampleRate(now)
	sched, ok := k.Schedule()
	if !ok {
		return false, nil
	}
	before := k.Announce(now)
	want := sched.HeldRotations(now)
	cur := sched.RotationAt(now)

	// Make or load what is missing, outside the lock: making a filter
	// takes a while.
	k.mu.RLock()
	have := make(map[uint32]bool, len(k.keys))
	for _, rk := range k.keys {
		have[rk.rotation] = true
	}
	k.mu.RUnlock()
	var added []*rotationKey
	var errs []error
	for _, r := range want {
		if have[r] {
			continue
		}
		rk, err := k.openRotation(r, r >= cur, sched)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if rk != nil {
			added = append(added, rk)
		}
	}

	k.mu.Lock()
	keep := k.keys[:0:0]
	var dropped []*rotationKey
	for _, rk := range k.keys {
		if slices.Contains(want, rk.rotation) {
			keep = append(keep, rk)
		} else {
			dropped = append(dropped, rk)
		}
	}
	keep = append(keep, added...)
	slices.SortFunc(keep, func(a, b *rotationKey) int { return int(int64(a.rotation) - int64(b.rotation)) })
	k.keys = keep
	k.current = nil
	for _, rk := range keep {
		if rk.rotation == cur {
			k.current = rk
		}
	}
	// No Process holds a key any more once the write lock is taken.
	for _, rk := range dropped {
		rk.key.Wipe()
	}
	k.mu.Unlock()

	for _, rk := range dropped {
		errs = append(errs, k.discard(rk))
		k.log.Info().Uint32("rotation", rk.rotation).Msg("Sphinx key expired: wiped, with its replay filter")
	}
	errs = append(errs, k.removeStale(want))
	after := k.Announce(now)
	return !slices.Equal(before, after), errors.Join(errs...)
}

// UpdatedAt is the time the last Update was for (zero before the first).
// The next Update is due at the first epoch boundary after it: an Update
// for a time before a boundary that ends after it leaves that boundary to
// do.
func (k *SphinxKeys) UpdatedAt() time.Time {
	k.updateMu.Lock()
	defer k.updateMu.Unlock()
	return k.updatedAt
}

// openRotation loads the key of rotation r from the data folder or, when
// there is none and make is set, makes one. It returns nil for a key of a
// past rotation that is not on disk (the node was not running then; no
// packet was made for a key it never announced).
func (k *SphinxKeys) openRotation(r uint32, make bool, sched directory.Schedule) (*rotationKey, error) {
	keyPath := filepath.Join(k.cfg.DataDir, KeyFile(r))
	replayPath := filepath.Join(k.cfg.DataDir, ReplayFile(r))
	raw, err := keyfile.Load(keyPath, SphinxKeyPEMType, sphinx.KeySize)
	made := false
	switch {
	case errors.Is(err, keyfile.ErrNotFound) && !make:
		return nil, nil
	case errors.Is(err, keyfile.ErrNotFound):
		if raw, _, err = keyfile.LoadOrCreate(keyPath, SphinxKeyPEMType, sphinx.KeySize, rand.Reader); err != nil {
			return nil, fmt.Errorf("node: Sphinx key of rotation %d: %w", r, err)
		}
		made = true
	case err != nil:
		return nil, fmt.Errorf("node: Sphinx key of rotation %d: %w", r, err)
	}
	key, err := sphinx.NewPrivateKey(raw)
	clear(raw)
	if err != nil {
		return nil, fmt.Errorf("node: Sphinx key of rotation %d: %w", r, err)
	}
	var filter *sphinx.ReplayFilter
	if !made {
		if filter, err = replaystore.LoadSaved(replayPath, key.PublicKey(), k.log); err != nil {
			key.Wipe()
			return nil, fmt.Errorf("node: %w", err)
		}
	}
	capacity := k.capacity(sched)
	if filter == nil {
		filter = sphinx.NewReplayFilter(capacity, k.cfg.FalsePositiveRate)
	}
	rk, err := k.startKey(r, key, filter, keyPath, replayPath)
	if err != nil {
		return nil, err
	}
	pub := key.PublicKey()
	ev := k.log.Info().Uint32("rotation", r).Str("sphinx_key", address.EncodeKey(pub[:])).
		Int("replay_capacity", filter.Capacity()).Int("replay_tags", filter.Count())
	if made {
		ev.Msg("made the Sphinx key of a rotation")
	} else {
		ev.Msg("loaded the Sphinx key of a rotation")
	}
	return rk, nil
}

// capacity is the size of a new key's filter: the traffic of its whole
// life at the configured peak rate, or at the highest rate measured over
// the last key's life with some headroom, if that is higher.
func (k *SphinxKeys) capacity(sched directory.Schedule) int {
	rate := k.cfg.PeakRate
	k.rateMu.Lock()
	for _, r := range k.rates {
		rate = max(rate, r*peakHeadroom)
	}
	k.rateMu.Unlock()
	want := math.Ceil(rate * sched.KeyLifetime().Seconds())
	switch {
	case want > MaxReplayCapacity:
		k.log.Warn().Float64("peak_rate", rate).Float64("tags", want).Int("capacity", MaxReplayCapacity).
			Msg("a key's replay filter would need more than the largest size: it will fill before the key expires; shorten the epochs")
		return MaxReplayCapacity
	case want < MinReplayCapacity:
		return MinReplayCapacity
	}
	return int(want)
}

// sampleRate records the packet rate since the last sample, for epochs'
// worth of samples; Update calls it at every epoch boundary.
func (k *SphinxKeys) sampleRate(now time.Time) {
	n := k.processed.Load()
	k.rateMu.Lock()
	defer k.rateMu.Unlock()
	if !k.rateAt.IsZero() {
		if d := now.Sub(k.rateAt).Seconds(); d > 0 {
			k.rates = append(k.rates, float64(n-k.rateCount)/d)
		}
	}
	k.rateAt, k.rateCount = now, n
	keep := directory.MaxRotationEpochs + 1
	if s, ok := k.Schedule(); ok {
		keep = s.RotationEpochs + 1
	}
	if len(k.rates) > keep {
		k.rates = slices.Delete(k.rates, 0, len(k.rates)-keep)
	}
}

// discard deletes a dropped key's file (overwritten first) and its filter.
func (k *SphinxKeys) discard(rk *rotationKey) error {
	return errors.Join(rk.saver.Discard(), wipeFile(rk.keyPath))
}

// removeStale wipes the key and filter files of rotations that are not
// held: the leftovers of a node that was down when they expired, and the
// static key of a node that has joined a network.
func (k *SphinxKeys) removeStale(held []uint32) error {
	rotations, err := rotationFiles(k.cfg.DataDir)
	if err != nil {
		return err
	}
	var errs []error
	for r := range rotations {
		if slices.Contains(held, r) {
			continue
		}
		k.log.Info().Uint32("rotation", r).Msg("wiping the Sphinx key of a rotation that ended while the node was down")
		errs = append(errs, wipeFile(filepath.Join(k.cfg.DataDir, KeyFile(r))), removeFile(filepath.Join(k.cfg.DataDir, ReplayFile(r))))
	}
	errs = append(errs, wipeFile(filepath.Join(k.cfg.DataDir, StaticKeyFile)), removeFile(filepath.Join(k.cfg.DataDir, StaticReplayFile)))
	return errors.Join(errs...)
}

// Announce returns the public keys the node registers at now: the current
// rotation's and, once announced, the next one's (not the previous one in
// its grace epoch: no new packet is built for it). It is empty for a static
// node and before the schedule is known.
func (k *SphinxKeys) Announce(now time.Time) []directory.SphinxKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.sched.EpochLength == 0 {
		return nil
	}
	cur := k.sched.RotationAt(now)
	var out []directory.SphinxKey
	for _, rk := range k.keys {
		if rk.rotation >= cur {
			out = append(out, directory.NewSphinxKey(rk.rotation, rk.key.PublicKey()))
		}
	}
	return out
}

// Held returns the rotations of the keys held now, oldest first, or
// StaticRotation for a static node.
func (k *SphinxKeys) Held() []uint32 {
	if k.static != nil {
		return []uint32{StaticRotation}
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]uint32, len(k.keys))
	for i, rk := range k.keys {
		out[i] = rk.rotation
	}
	return out
}

// PublicKey returns the public key of rotation r (StaticRotation for a
// static node), if the node holds it.
func (k *SphinxKeys) PublicKey(r uint32) (sphinx.PublicKey, bool) {
	if k.static != nil {
		return k.static.key.PublicKey(), r == StaticRotation
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	for _, rk := range k.keys {
		if rk.rotation == r {
			return rk.key.PublicKey(), true
		}
	}
	return sphinx.PublicKey{}, false
}

// Current returns the public key of the rotation under way at now (the zero
// key before the schedule is known), or a static node's one key: the key
// senders build packets routed through the node with.
func (k *SphinxKeys) Current(now time.Time) sphinx.PublicKey {
	r := uint32(StaticRotation)
	if k.static == nil {
		s, ok := k.Schedule()
		if !ok {
			return sphinx.PublicKey{}
		}
		r = s.RotationAt(now)
	}
	pub, _ := k.PublicKey(r)
	return pub
}

// Process peels one layer of packet (see sphinx.Processor.Process) with
// the key the frame's key-rotation byte names, as Nym's nodes do: odd or
// even names the held key of that parity; unknown names the current key
// and, if the packet does not authenticate with it, the other held one. It
// returns the rotation of the key that peeled the packet, for the frame
// that carries it on. A packet for a rotation the node holds no key for is
// ErrNoKey; a static node's one key takes every packet.
func (k *SphinxKeys) Process(rot wire.KeyRotation, dst, packet []byte) (sphinx.Result, uint32, error) {
	k.processed.Add(1)
	if k.static != nil {
		res, err := k.static.proc.Process(dst, packet)
		return res, StaticRotation, err
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if rot != wire.KeyRotationUnknown {
		odd := rot == wire.KeyRotationOdd
		for _, rk := range k.keys {
			if (rk.rotation%2 == 1) == odd {
				res, err := rk.proc.Process(dst, packet)
				k.checkFill(rk)
				return res, rk.rotation, err
			}
		}
		return sphinx.Result{}, 0, ErrNoKey
	}
	cur := k.current
	if cur == nil {
		return sphinx.Result{}, 0, ErrNoKey
	}
	res, err := cur.proc.Process(dst, packet)
	if errors.Is(err, sphinx.ErrAuthentication) {
		for _, rk := range k.keys {
			if rk != cur {
				res, err = rk.proc.Process(dst, packet)
				k.checkFill(rk)
				return res, rk.rotation, err
			}
		}
	}
	k.checkFill(cur)
	return res, cur.rotation, err
}

// checkFill logs, once per key, that its filter is past FillWarning.
func (k *SphinxKeys) checkFill(rk *rotationKey) {
	if float64(rk.filter.Count()) < FillWarning*float64(rk.filter.Capacity()) || rk.warned.Swap(true) {
		return
	}
	k.log.Warn().Uint32("rotation", rk.rotation).Int("tags", rk.filter.Count()).Int("capacity", rk.filter.Capacity()).
		Float64("false_positive_rate", rk.filter.FalsePositiveRate(rk.filter.Count())).
		Msg("a replay filter is nearly full: the node receives more packets than it was sized for (raise --peak-rate, or shorten the epochs)")
}

// FilterStats describes the replay filter of one held key.
type FilterStats struct {
	// Rotation is the key's rotation (StaticRotation for a static node).
	Rotation uint32
	// Tags is how many fresh tags the filter holds; Capacity how many it
	// was sized for.
	Tags, Capacity int
	// FalsePositiveRate is the estimated share of fresh packets it refuses
	// now.
	FalsePositiveRate float64
}

// Filters describes the filters of the keys held now, oldest first.
func (k *SphinxKeys) Filters() []FilterStats {
	stat := func(rk *rotationKey) FilterStats {
		n := rk.filter.Count()
		return FilterStats{Rotation: rk.rotation, Tags: n, Capacity: rk.filter.Capacity(), FalsePositiveRate: rk.filter.FalsePositiveRate(n)}
	}
	if k.static != nil {
		return []FilterStats{stat(k.static)}
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]FilterStats, len(k.keys))
	for i, rk := range k.keys {
		out[i] = stat(rk)
	}
	return out
}

// Close saves every held filter, stops the periodic saves and wipes the
// private keys from memory (they stay on disk for the next start). Call it
// once no Process runs any more.
func (k *SphinxKeys) Close() error {
	k.updateMu.Lock()
	defer k.updateMu.Unlock()
	k.closed = true
	k.mu.Lock()
	keys := k.keys
	if k.static != nil {
		keys = []*rotationKey{k.static}
	}
	k.keys, k.current = nil, nil
	k.mu.Unlock()
	var errs []error
	for _, rk := range keys {
		errs = append(errs, rk.saver.Close())
		rk.key.Wipe()
	}
	return errors.Join(errs...)
}

// RotationByte is the frame's key-rotation byte for packets made for the
// keys of rotation r, Nym's mapping: rotation 0 (and a static node's key)
// is unknown, then odd and even.
func RotationByte(r uint32) wire.KeyRotation {
	switch {
	case r == 0 || r == StaticRotation:
		return wire.KeyRotationUnknown
	case r%2 == 1:
		return wire.KeyRotationOdd
	}
	return wire.KeyRotationEven
}
