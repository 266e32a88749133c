package client

import (
	"container/list"
	"slices"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// replyDigest names a reply key: the digest a reply packet carries.
type replyDigest = [sphinx.ReplyDigestSize]byte

// replyKeyring holds the keys that open replies to this client, by digest.
// A recipient decides how many SURBs it asks this client for, so the keys
// of one sender tag (one recipient) are bounded: past perTag, that tag's
// oldest keys are forgotten first. An honest recipient keeps only its
// newest SURBs anyway (SURBConfig.Max), so the oldest keys are the ones no
// reply will come for. It is guarded by the client's mu.
type replyKeyring struct {
	perTag   int
	byDigest map[replyDigest]*replyKey
	byTag    map[address.SenderTag]*list.List // of replyDigest, oldest first
}

func newReplyKeyring(perTag int) *replyKeyring {
	return &replyKeyring{perTag: perTag, byDigest: map[replyDigest]*replyKey{}, byTag: map[address.SenderTag]*list.List{}}
}

// get returns the key of d, or nil.
func (r *replyKeyring) get(d replyDigest) *replyKey { return r.byDigest[d] }

// len is the number of keys held.
func (r *replyKeyring) len() int { return len(r.byDigest) }

// add records k under d and returns the digests it forgot to stay within
// the bound of k's tag.
func (r *replyKeyring) add(d replyDigest, k *replyKey) (forgotten []replyDigest) {
	if r.byDigest[d] != nil {
		return nil
	}
	l := r.byTag[k.tag]
	if l == nil {
		l = list.New()
		r.byTag[k.tag] = l
	}
	k.elem = l.PushBack(d)
	r.byDigest[d] = k
	for l.Len() > r.perTag {
		old := l.Front().Value.(replyDigest)
		r.remove(old)
		forgotten = append(forgotten, old)
	}
	return forgotten
}

// remove forgets d and reports whether it was held.
func (r *replyKeyring) remove(d replyDigest) bool {
	k := r.byDigest[d]
	if k == nil {
		return false
	}
	delete(r.byDigest, d)
	l := r.byTag[k.tag]
	l.Remove(k.elem)
	if l.Len() == 0 {
		delete(r.byTag, k.tag)
	}
	return true
}

// expire forgets the keys created before cutoff and returns their digests.
func (r *replyKeyring) expire(cutoff time.Time) []replyDigest {
	var old []replyDigest
	for _, l := range r.byTag {
		for e := l.Front(); e != nil; e = e.Next() {
			d := e.Value.(replyDigest)
			if !r.byDigest[d].created.Before(cutoff) {
				break // the rest of the tag's keys are newer
			}
			old = append(old, d)
		}
	}
	for _, d := range old {
		r.remove(d)
	}
	return old
}

// load fills an empty keyring with keys loaded from the data folder, oldest
// first within each tag, and returns the digests beyond the bound.
func (r *replyKeyring) load(keys map[replyDigest]*replyKey) (forgotten []replyDigest) {
	ds := make([]replyDigest, 0, len(keys))
	for d := range keys {
		ds = append(ds, d)
	}
	slices.SortFunc(ds, func(a, b replyDigest) int { return keys[a].created.Compare(keys[b].created) })
	for _, d := range ds {
		forgotten = append(forgotten, r.add(d, keys[d])...)
	}
	return forgotten
}
