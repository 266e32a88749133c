package client

import (
	"time"

	"github.com/peapod-mixnet/peapod/directory"
)

// SURB lifetimes. A reply SURB is made with the Sphinx keys of one key
// rotation (the message that carries it says which), and is good only while
// the nodes hold those keys: until directory.Schedule.KeyExpires of its
// rotation. A replier stops using a SURB surbMargin before that, so that the
// reply is through the network before the keys go, and drops it then. Once
// the keys of the next rotation are announced, a pool in use that holds
// SURBs made for older keys asks its sender for as many fresh ones (made with
// the newer keys; see refreshExpiringLocked), two epochs before the old ones
// expire, so that a conversation survives any number of rotations without
// running dry; a reply that finds no usable SURB waits for them as any reply
// does.

// maxSURBMargin bounds surbMargin on networks with long epochs.
const maxSURBMargin = 30 * time.Second

// requestRetry is how long a pool waits for the SURBs it asked for before it
// asks again: SURBs.RequestWait (a quarter of it while replies wait), at
// most half an epoch, so that a lost request is asked again well before the
// pool's SURBs expire, and at least requestRetryMin.
func (c *Client) requestRetry(waiting bool) time.Duration {
	retry := c.cfg.SURBs.RequestWait
	if waiting {
		retry /= urgentRetryDivisor
	}
	if v := c.view.Load(); v != nil {
		retry = min(retry, v.sched.EpochLength/2)
	}
	// The sender takes a request that comes within requestCopyWindow of
	// its last answer for a copy of the one it answered; asking again
	// sooner would spend SURBs on requests it ignores.
	return max(retry, requestRetryMin)
}

// surbMargin is how long before its keys expire a SURB stops being used:
// a quarter of an epoch, at most maxSURBMargin.
func surbMargin(s directory.Schedule) time.Duration {
	return min(s.EpochLength/4, maxSURBMargin)
}

// SURBLifetime is the longest a reply SURB stays usable on the network,
// from when it is made (or received): a SURB made with the newest announced
// keys lives until they expire, at most directory.Schedule.KeyLifetime, less
// the safety margin a replier keeps. A SURB held longer than this is
// certainly unusable, whatever its keys. It is taken from the topology the
// client holds (the default schedule's before it has one): call it after
// Start.
func (c *Client) SURBLifetime() time.Duration {
	s := directory.DefaultSchedule()
	if v := c.view.Load(); v != nil {
		s = v.sched
	}
	return s.KeyLifetime() - surbMargin(s)
}

// surbUsable reports whether a SURB made with the keys of rotation r may
// still be used at now. Before the client holds a topology it knows no
// schedule and assumes so.
func (c *Client) surbUsable(r uint32, now time.Time) bool {
	v := c.view.Load()
	if v == nil {
		return true
	}
	return now.Before(v.sched.KeyExpires(r).Add(-surbMargin(v.sched)))
}

// surbExpired reports whether st may no longer be used at now: it was
// received more than SURBs.Lifetime ago, or its keys are about to expire.
func (c *Client) surbExpired(st storedSURB, now time.Time) bool {
	return st.received.Before(now.Add(-c.cfg.SURBs.Lifetime)) || !c.surbUsable(st.rotation, now)
}

// dropExpiredLocked removes from p the SURBs that may no longer be used,
// adding them to pc. c.mu must be held.
func (c *Client) dropExpiredLocked(p *surbPool, now time.Time, pc *poolCleanup) {
	keep := p.surbs[:0]
	for _, st := range p.surbs {
		if c.surbExpired(st, now) {
			pc.dbKeys = append(pc.dbKeys, st.dbKey)
		} else {
			keep = append(keep, st)
		}
	}
	if n := len(p.surbs) - len(keep); n > 0 {
		c.log.Debug().Str("sender", p.tag.String()).Int("surbs", n).Int("left", len(keep)).Msg("reply SURBs expired")
	}
	c.surbsHeld -= len(p.surbs) - len(keep)
	clear(p.surbs[len(keep):])
	p.surbs = keep
}

// refreshExpiringLocked asks p's sender for fresh SURBs once the keys of a
// newer rotation than some of p's SURBs were made for are announced and
// listed in the client's view of the topology (those
// SURBs then have two epochs left at most, and the sender can make SURBs
// that outlive them), when p has been used since its last such request,
// that request is at least surbMargin old, and no request is under way: as
// many as are older less those the pool holds of the newest keys already,
// at least SURBs.Request. c.mu must be held.
func (c *Client) refreshExpiringLocked(p *surbPool, now time.Time) {
	v := c.view.Load()
	if v == nil || p.requesting || len(p.surbs) == 0 || !p.lastUsed.After(p.refreshedAt) ||
		now.Sub(p.refreshedAt) < surbMargin(v.sched) {
		return
	}
	newest := v.sched.RotationAt(now)
	if v.sched.Holds(newest+1, now) && v.layersHaveKeys(newest+1) {
		newest++ // announced, and in the view: the sender's will have it too
	}
	older, fresh := 0, 0
	for _, st := range p.surbs {
		if st.rotation < newest {
			older++
		} else {
			fresh++
		}
	}
	if older <= fresh {
		return // replaced already
	}
	p.refreshedAt = now
	c.requestSURBsLocked(p, max(older-fresh, c.cfg.SURBs.Request))
}
