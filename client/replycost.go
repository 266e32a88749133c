package client

import "math"

// How many SURBs a reply fragment takes. Every attempt of a reply fragment
// spends a SURB, and a fragment is sent again until its ack comes back, so
// under loss a reply costs its sender's SURBs several times over: with a
// fraction q of attempts acknowledged, 1/q SURBs per fragment on average
// (six with 20% loss on each of the eight links a reply and its ack cross).
// A replier that asked for one SURB per waiting fragment would need one
// round trip to its sender per attempt; it asks for what the fragments are
// expected to cost instead, and sends the request on more copies when few
// attempts get through.
const (
	// replyCostWeight is the weight of each acknowledged reply fragment in
	// the running mean of SURBs spent per fragment.
	replyCostWeight = 1.0 / 16
	// maxReplyCost bounds the estimate, so that a burst of late acks
	// cannot make a replier ask for a sender's whole pool limit at once
	// for a handful of fragments.
	maxReplyCost = 8
	// maxRequestCopies bounds the copies of one request for more SURBs
	// (requestCopies is the least).
	maxRequestCopies = 4
	// requestLossGoal is the chance of losing every copy of a request
	// that the number of copies aims for.
	requestLossGoal = 0.1
)

// replyCost is a running mean of the SURBs each acknowledged reply
// fragment spent. The zero value estimates one. Guarded by Client.mu.
type replyCost struct {
	mean float64
}

// observe records an acknowledged reply fragment that spent surbs SURBs.
func (r *replyCost) observe(surbs int) {
	if r.mean == 0 {
		r.mean = 1
	}
	r.mean += (float64(surbs) - r.mean) * replyCostWeight
}

// perFragment is the SURBs a reply fragment is expected to spend, from 1
// to maxReplyCost.
func (r *replyCost) perFragment() float64 {
	return min(max(r.mean, 1), maxReplyCost)
}

// need is how many SURBs n reply fragments are expected to spend.
func (r *replyCost) need(n int) int {
	return int(math.Ceil(float64(n) * r.perFragment()))
}

// copies is how many SURBs to send a request for more on: enough that all
// are lost at most requestLossGoal of the time, taking an attempt's way
// there to succeed as often as its ack's way back (the square root of the
// fraction of attempts acknowledged), from requestCopies to
// maxRequestCopies.
func (r *replyCost) copies() int {
	through := 1 / math.Sqrt(r.perFragment())
	if through >= 1 {
		return requestCopies
	}
	n := int(math.Ceil(math.Log(requestLossGoal) / math.Log(1-through)))
	return min(max(n, requestCopies), maxRequestCopies)
}
