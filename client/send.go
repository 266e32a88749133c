package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/client/internal/fragment"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// Delivery follows one message: it is done when every fragment has been
// acknowledged by the recipient's gateway, or when the message has failed.
type Delivery struct {
	done      chan struct{}
	once      sync.Once
	err       error
	remaining int // guarded by Client.mu
}

// NewDelivery returns a Delivery and the function that finishes it (nil
// error: delivered), for programs that stand in for a Client.
func NewDelivery() (*Delivery, func(error)) {
	d := &Delivery{done: make(chan struct{})}
	return d, d.finish
}

func newDelivery(n int) *Delivery {
	d := &Delivery{done: make(chan struct{}), remaining: n}
	if n == 0 {
		d.finish(nil)
	}
	return d
}

func (d *Delivery) finish(err error) {
	d.once.Do(func() {
		d.err = err
		close(d.done)
	})
}

// Done is closed when the message is delivered or has failed.
func (d *Delivery) Done() <-chan struct{} { return d.done }

// Err is nil once the message is delivered, the failure after it failed, and
// nil while it is under way.
func (d *Delivery) Err() error {
	select {
	case <-d.done:
		return d.err
	default:
		return nil
	}
}

// Wait blocks until the message is delivered (nil), has failed, or ctx ends.
func (d *Delivery) Wait(ctx context.Context) error {
	select {
	case <-d.done:
		return d.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *Delivery) failed() bool {
	select {
	case <-d.done:
		return d.err != nil
	default:
		return false
	}
}

// target is where a fragment goes: to an address, or back to an anonymous
// sender on the SURBs it gave us.
type target struct {
	to    address.Address
	reply *address.SenderTag
}

// pendingFragment is one fragment from the moment it is queued until it is
// acknowledged.
type pendingFragment struct {
	id       fragment.ID
	wire     []byte
	d        *Delivery
	target   target
	lane     uint64
	attempts int
	inFlight bool // holds a window token
	done     bool
	// queuedForSURB: a reply fragment counted in its pool's queued until
	// it first asks the pool for a SURB.
	queuedForSURB bool
	timer         *time.Timer
	route         []string           // mixnodes of the last attempt
	firstHop      sphinx.NodeAddress // of the last attempt
}

// outStream numbers the messages a client sends to one recipient.
type outStream struct {
	id   [streamIDSize]byte
	next uint64
}

// SendOption modifies a send.
type SendOption func(*sendOptions)

type sendOptions struct{ lane uint64 }

// WithLane puts the message on a lane (Nym's connection id): LaneQueueLength
// reports how many of a lane's packets wait to be sent.
func WithLane(lane uint64) SendOption { return func(o *sendOptions) { o.lane = lane } }

// Lane returns the lane opts put a message on (0 without WithLane): for
// programs that stand in for a Client, such as test doubles.
func Lane(opts ...SendOption) uint64 { return applyOptions(opts).lane }

func applyOptions(opts []SendOption) sendOptions {
	var o sendOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Send sends data to an address. The recipient learns nothing about the
// sender. It returns once every fragment is queued (blocking while the send
// queue is full); the Delivery reports when the message has arrived at the
// recipient's gateway.
func (c *Client) Send(ctx context.Context, to address.Address, data []byte, opts ...SendOption) (*Delivery, error) {
	if err := c.checkSend(data); err != nil {
		return nil, err
	}
	pos, err := c.nextPos("to:" + string(to.AppendBinary(nil)))
	if err != nil {
		return nil, err
	}
	return c.submit(ctx, target{to: to}, plainMessage(pos, data), applyOptions(opts).lane)
}

// SendAnonymous sends data to an address with surbs reply SURBs and this
// client's sender tag for that recipient, so that it can reply (Reply)
// without learning who asked.
func (c *Client) SendAnonymous(ctx context.Context, to address.Address, data []byte, surbs int, opts ...SendOption) (*Delivery, error) {
	if err := c.checkSend(data); err != nil {
		return nil, err
	}
	if surbs < 0 || surbs > maxSURBsInMessage {
		return nil, fmt.Errorf("client: %d reply SURBs, want 0 to %d", surbs, maxSURBsInMessage)
	}
	tag, err := c.senderTag(to)
	if err != nil {
		return nil, err
	}
	list, err := c.makeSURBs(ctx, tag, surbs)
	if err != nil {
		return nil, err
	}
	pos, err := c.nextPos("anon:" + string(to.AppendBinary(nil)))
	if err != nil {
		return nil, err
	}
	msg, err := repliableMessage(tag, list, pos, data)
	if err != nil {
		return nil, err
	}
	return c.submit(ctx, target{to: to}, msg, applyOptions(opts).lane)
}

// Reply sends data to the anonymous sender with this tag, on the SURBs it
// gave. When SURBs run low the client asks the sender for more; when none
// are left and none come, the Delivery fails with ErrNoSURBs.
func (c *Client) Reply(ctx context.Context, tag address.SenderTag, data []byte, opts ...SendOption) (*Delivery, error) {
	if err := c.checkSend(data); err != nil {
		return nil, err
	}
	c.mu.Lock()
	p, ok := c.pools[tag]
	empty := !ok || (len(p.surbs) == 0 && len(p.waiting) == 0 && !p.requesting)
	c.mu.Unlock()
	if empty {
		return nil, fmt.Errorf("%w for sender %s", ErrNoSURBs, tag)
	}
	pos, err := c.nextPos(replyStreamKey(tag))
	if err != nil {
		return nil, err
	}
	return c.submit(ctx, target{reply: &tag}, replyMessage(pos, data), applyOptions(opts).lane)
}

// LaneQueueLength is how many packets of a lane wait to be sent.
func (c *Client) LaneQueueLength(lane uint64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lanes[lane]
}

// CloseLane forgets a lane's count (Nym's ClosedConnection).
func (c *Client) CloseLane(lane uint64) {
	c.mu.Lock()
	delete(c.lanes, lane)
	c.mu.Unlock()
}

// checkSend refuses a send on a client that is not running, or of more
// than Config.MaxMessageSize bytes.
func (c *Client) checkSend(data []byte) error {
	if !c.started.Load() {
		return errors.New("client: not started")
	}
	if c.ctx.Err() != nil {
		return ErrClosed
	}
	if len(data) > c.cfg.MaxMessageSize {
		return fmt.Errorf("client: a message of %d bytes, more than the %d a recipient takes (Config.MaxMessageSize)", len(data), c.cfg.MaxMessageSize)
	}
	return nil
}

// nextPos numbers the next message of the stream named key. Streams are new
// for every run of the client, so numbering restarts safely after a restart.
func (c *Client) nextPos(key string) (streamPos, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.streams[key]
	if s == nil {
		s = &outStream{}
		if _, err := io.ReadFull(c.cfg.Rand, s.id[:]); err != nil {
			return streamPos{}, fmt.Errorf("client: reading randomness: %w", err)
		}
		c.streams[key] = s
	}
	p := streamPos{stream: s.id, seq: s.next}
	s.next++
	return p, nil
}

// submit fragments msg and queues the fragments.
func (c *Client) submit(ctx context.Context, t target, msg []byte, lane uint64) (*Delivery, error) {
	var frags []fragment.Fragment
	for {
		var err error
		if frags, err = fragment.Split(msg, FragmentCapacity, c.cfg.Rand); err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		if !c.collides(frags) {
			break
		}
	}
	return c.queueFragments(ctx, t, frags, lane)
}

// queueFragments queues a message's fragments for t and returns the
// Delivery that follows them.
func (c *Client) queueFragments(ctx context.Context, t target, frags []fragment.Fragment, lane uint64) (*Delivery, error) {
	d := newDelivery(len(frags))
	pfs := make([]*pendingFragment, len(frags))
	c.mu.Lock()
	for i, f := range frags {
		pfs[i] = &pendingFragment{id: f.ID(), wire: f.AppendBinary(make([]byte, 0, FragmentCapacity)), d: d, target: t, lane: lane, queuedForSURB: t.reply != nil}
		c.pending[pfs[i].id] = pfs[i]
	}
	if t.reply != nil {
		c.pool(*t.reply).queued += len(frags)
	}
	c.lanes[lane] += len(pfs)
	c.mu.Unlock()
	for i, pf := range pfs {
		select {
		case c.queue <- pf:
		case <-ctx.Done():
			c.abandon(pfs[i:], fmt.Errorf("client: queueing the message: %w", ctx.Err()))
			return d, ctx.Err()
		case <-c.ctx.Done():
			c.abandon(pfs[i:], ErrClosed)
			return d, ErrClosed
		}
	}
	return d, nil
}

// collides reports whether a set id of frags is in flight already.
func (c *Client) collides(frags []fragment.Fragment) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range frags {
		if f.Index == 1 {
			if _, ok := c.pending[f.ID()]; ok {
				return true
			}
		}
	}
	return false
}

// abandon forgets fragments that never got queued and fails their message.
func (c *Client) abandon(pfs []*pendingFragment, err error) {
	c.mu.Lock()
	for _, pf := range pfs {
		pf.done = true
		delete(c.pending, pf.id)
		c.lanes[pf.lane]--
		c.unqueueForSURBLocked(pf)
	}
	c.mu.Unlock()
	pfs[0].d.finish(err)
}

// dispatchLoop moves queued fragments to the builders as the window allows.
func (c *Client) dispatchLoop() {
	for {
		var pf *pendingFragment
		select {
		case <-c.ctx.Done():
			return
		case pf = <-c.queue:
		}
		c.mu.Lock()
		if c.lanes[pf.lane]--; c.lanes[pf.lane] <= 0 {
			delete(c.lanes, pf.lane)
		}
		skip := pf.done || pf.d.failed()
		if skip {
			pf.done = true
			delete(c.pending, pf.id)
		}
		c.mu.Unlock()
		if skip {
			continue
		}
		select {
		case c.window <- struct{}{}:
		case <-c.ctx.Done():
			return
		}
		c.mu.Lock()
		pf.inFlight = true
		c.mu.Unlock()
		select {
		case c.jobs <- pf:
		case <-c.ctx.Done():
			return
		}
	}
}

// buildLoop builds packets for fragments, first sends and retransmissions.
func (c *Client) buildLoop() {
	for {
		select {
		case <-c.ctx.Done():
			return
		case pf := <-c.jobs:
			err := c.send(pf)
			switch {
			case errors.Is(err, errOwnGatewayUnlisted), errors.Is(err, errNoRoute):
				c.sendLater(pf)
			case err != nil:
				c.log.Warn().Err(err).Str("fragment", pf.id.String()).Msg("cannot send a fragment")
				c.fail(pf, err)
			}
		}
	}
}

// errOwnGatewayUnlisted means the topology held does not list the client's
// own gateway: it is restarting (a gateway leaves the directory while it
// stops) or has moved. The link cannot be up either, so a fragment waits
// for the gateway to be listed again rather than fail.
var errOwnGatewayUnlisted = errors.New("client: own gateway is not in the topology")

// sendLater tries pf again after RetransmitBase, asking for the topology
// meanwhile: the fragment keeps its place in the window, and it is not an
// attempt (nothing was sent). It is for a topology that cannot route now
// (the own gateway unlisted, or a layer without a mixnode): a node or
// network restarting, which a fragment waits out rather than fail.
func (c *Client) sendLater(pf *pendingFragment) {
	c.log.Debug().Str("fragment", pf.id.String()).Msg("the topology cannot route now; the fragment waits")
	c.kickTopology()
	time.AfterFunc(c.cfg.RetransmitBase, func() {
		select {
		case c.jobs <- pf:
		case <-c.ctx.Done():
		}
	})
}

// send builds one attempt of pf and hands it to the link. A reply that has
// no SURB to go on is parked until SURBs arrive.
func (c *Client) send(pf *pendingFragment) error {
	c.mu.Lock()
	if pf.done {
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	view, err := c.topology(c.ctx)
	if err != nil {
		return err
	}
	mix, ackMean := c.meanDelays(view)
	now := time.Now()
	self, ok := view.gateway(c.addr.Gateway[:])
	if !ok {
		return fmt.Errorf("%w (%s)", errOwnGatewayUnlisted, address.EncodeKey(c.addr.Gateway[:]))
	}
	ackRoute, ackIDs, ackDelay, err := view.route(&c.health, &self.netNode, ackMean, now)
	if err != nil {
		return err
	}
	plan := &packetPlan{ackPath: ackRoute, self: sphinx.Destination(c.addr.Identity), ackKey: c.keys.ackKey, id: pf.id, frag: pf.wire}
	var fwdDelay time.Duration
	var fwdIDs []string
	if pf.target.reply != nil {
		surb, ok := c.takeSURB(*pf.target.reply, pf)
		if !ok {
			return nil // parked; sent again when SURBs arrive
		}
		plan.surb = surb
		fwdDelay = 3 * mix // the SURB's delays are its creator's; estimate them
	} else {
		gw, ok := view.gateway(pf.target.to.Gateway[:])
		if !ok {
			c.refreshTopology(c.ctx)
			if view, err = c.topology(c.ctx); err != nil {
				return err
			}
			if gw, ok = view.gateway(pf.target.to.Gateway[:]); !ok {
				return fmt.Errorf("client: the recipient's gateway %s is not in the topology", address.EncodeKey(pf.target.to.Gateway[:]))
			}
		}
		if plan.route, fwdIDs, fwdDelay, err = view.route(&c.health, &gw.netNode, mix, now); err != nil {
			return err
		}
		plan.dest = sphinx.Destination(pf.target.to.Identity)
		plan.encKey = &pf.target.to.Encryption
	}
	firstHop, pkt, err := buildPacket(c.cfg.Rand, plan)
	if err != nil {
		return err
	}
	timeout := (fwdDelay+ackDelay)*3/2 + c.cfg.RetransmitBase
	route := append(fwdIDs, ackIDs...)
	op := &outPacket{firstHop: firstHop, packet: pkt, sent: func() { c.armTimer(pf, timeout, route, firstHop) }}
	select {
	case c.link.out <- op:
		return nil
	case <-c.ctx.Done():
		return ErrClosed
	}
}

// armTimer starts pf's retransmission timer once its packet is on its way.
func (c *Client) armTimer(pf *pendingFragment, timeout time.Duration, route []string, firstHop sphinx.NodeAddress) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pf.done {
		return
	}
	pf.route, pf.firstHop = route, firstHop
	pf.timer = time.AfterFunc(timeout, func() { c.resend(pf, true) })
}

// staleAfterAttempts is the number of unacknowledged attempts of a fragment
// after which the client suspects its topology is out of date.
const staleAfterAttempts = 2

// resend sends pf again, on a fresh route: after its ack failed to come
// (blame: the mixnodes of its route lose standing), or because its first
// hop left the topology.
func (c *Client) resend(pf *pendingFragment, blame bool) {
	c.mu.Lock()
	if pf.done {
		c.mu.Unlock()
		return
	}
	pf.attempts++
	route, attempts := pf.route, pf.attempts
	c.mu.Unlock()
	if blame {
		now := time.Now()
		c.health.adjust(route, 1, now)
		if attempts >= staleAfterAttempts {
			c.suspectTopology(now)
		}
	}
	c.stats.retransmits.Add(1)
	select {
	case c.jobs <- pf:
	case <-c.ctx.Done():
	}
}

// onAck marks a fragment delivered.
func (c *Client) onAck(id fragment.ID) {
	c.mu.Lock()
	pf := c.pending[id]
	if pf == nil || pf.done {
		c.mu.Unlock()
		return // a duplicate ack, or a cover packet's
	}
	pf.done = true
	delete(c.pending, id)
	if pf.timer != nil {
		pf.timer.Stop()
	}
	route := pf.route
	if pf.target.reply != nil {
		c.replyCost.observe(pf.attempts + 1)
	}
	pf.d.remaining--
	finished := pf.d.remaining == 0
	c.releaseLocked(pf)
	c.mu.Unlock()
	c.stats.acks.Add(1)
	c.health.adjust(route, -0.5, time.Now())
	if finished {
		pf.d.finish(nil)
	}
}

func (c *Client) releaseLocked(pf *pendingFragment) {
	if pf.inFlight {
		pf.inFlight = false
		<-c.window
	}
}

// fail gives up on pf's message.
func (c *Client) fail(pf *pendingFragment, err error) {
	c.mu.Lock()
	var siblings []*pendingFragment
	for _, other := range c.pending {
		if other.d == pf.d {
			siblings = append(siblings, other)
		}
	}
	for _, s := range siblings {
		s.done = true
		delete(c.pending, s.id)
		if s.timer != nil {
			s.timer.Stop()
		}
		c.releaseLocked(s)
		c.unqueueForSURBLocked(s)
	}
	c.mu.Unlock()
	pf.d.finish(err)
}

// failAll fails every message in flight (on Close).
func (c *Client) failAll(err error) {
	c.mu.Lock()
	var ds []*Delivery
	for id, pf := range c.pending {
		pf.done = true
		if pf.timer != nil {
			pf.timer.Stop()
		}
		ds = append(ds, pf.d)
		delete(c.pending, id)
	}
	c.mu.Unlock()
	for _, d := range ds {
		d.finish(err)
	}
}

// coverContent is what a cover packet carries, end-to-end encrypted like any
// fragment; the client recognises and drops it when it comes back.
var coverContent = func() []byte {
	b := make([]byte, FragmentCapacity)
	copy(b, "peapod loop cover")
	return b
}()

func isCover(frag []byte) bool { return bytes.Equal(frag, coverContent) }

// coverPacket builds a loop cover packet: a real-looking packet to this client
// itself, with a real SURB-ack.
func (c *Client) coverPacket(ctx context.Context) (*outPacket, error) {
	view, err := c.topology(ctx)
	if err != nil {
		return nil, err
	}
	self, ok := view.gateway(c.addr.Gateway[:])
	if !ok {
		return nil, errors.New("client: own gateway is not in the topology")
	}
	mix, ackMean := c.meanDelays(view)
	now := time.Now()
	route, _, _, err := view.route(&c.health, &self.netNode, mix, now)
	if err != nil {
		return nil, err
	}
	ackRoute, _, _, err := view.route(&c.health, &self.netNode, ackMean, now)
	if err != nil {
		return nil, err
	}
	plan := &packetPlan{
		route: route, dest: sphinx.Destination(c.addr.Identity), encKey: &c.keys.encPub,
		ackPath: ackRoute, self: sphinx.Destination(c.addr.Identity), ackKey: c.keys.ackKey,
		id: fragment.CoverID, frag: coverContent,
	}
	firstHop, pkt, err := buildPacket(c.cfg.Rand, plan)
	if err != nil {
		return nil, err
	}
	return &outPacket{firstHop: firstHop, packet: pkt}, nil
}
