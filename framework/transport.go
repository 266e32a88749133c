package framework

import (
	"context"
	"crypto"
	"errors"

	"github.com/peapod-mixnet/peapod/address"
)

// ErrTransportClosed is returned (possibly wrapped) by a Transport's Receive
// and Reply once the transport is closed.
var ErrTransportClosed = errors.New("framework: transport closed")

// Message is one message a Transport received from the mixnet.
type Message struct {
	// Data is the message body. It belongs to the receiver.
	Data []byte
	// SenderTag names the anonymous sender when the message came with reply
	// SURBs; replies go to it. It is nil for a message that cannot be
	// answered.
	SenderTag *address.SenderTag
}

// Transport connects a Host to the mixnet: it receives the requests sent to
// the provider's address and sends replies back over the requesters' reply
// SURBs. The Host never learns which implementation it talks to; handlers
// never see the transport at all.
//
// Two implementations come with the package: [ClientTransport], a peapod
// client embedded in the process, and [NymTransport], a Nym native client
// (or anything serving its WebSocket API) in another process.
//
// An implementation must behave as follows.
//
//   - Start connects and returns once the transport knows its address and is
//     connected, or with an error when ctx ends first (it may keep trying
//     in the background; Close stops it). It is called once.
//   - Address returns the provider's current mixnet address; it is valid
//     after Start. It may change while the transport runs (an external
//     client replaced by one with another identity); callers read it again
//     rather than keep it.
//   - Connected reports whether messages can flow now.
//   - Receive returns the next message. It blocks until one arrives, ctx
//     ends (an error wrapping ctx.Err()), or the transport is closed
//     (ErrTransportClosed). Only one goroutine calls it at a time. While
//     nobody calls Receive, the transport stops reading from the network
//     rather than buffer without bound.
//   - Reply hands data to the mixnet for the sender known by tag, and
//     returns once it is accepted for sending: delivery is asynchronous,
//     and the transport's client fragments the reply and asks the sender
//     for more SURBs when it runs short. It fails when the reply cannot be
//     accepted before ctx ends, or at all (no SURBs are known for tag, the
//     transport is closed). It must be safe for concurrent use and must not
//     keep data after returning.
//   - Close gives replies already accepted a bounded time to leave, then
//     disconnects and returns once the transport's goroutines have ended.
//     Blocked and later calls of Receive and Reply fail with
//     ErrTransportClosed. Close may be called more than once.
//
// Address, Connected and Close must be safe for concurrent use with each
// other and with Receive and Reply.
type Transport interface {
	Start(ctx context.Context) error
	Address() address.Address
	Connected() bool
	Receive(ctx context.Context) (Message, error)
	Reply(ctx context.Context, tag address.SenderTag, data []byte) error
	Close() error
}

// AddressSigner is implemented by a Transport that holds the private
// identity key of its own address. The Host then signs its descriptor with
// that key, which makes the descriptor self-certifying (see package
// descriptor): a requester who knows the address can check that the
// descriptor comes from its holder.
type AddressSigner interface {
	// AddressSigner returns a signer holding the ed25519 identity key whose
	// public half is Address().Identity.
	AddressSigner() crypto.Signer
}

// SURBCounter is implemented by a Transport that knows how many reply SURBs
// it holds; the Host exports the figures as metrics.
type SURBCounter interface {
	// SURBStats returns what the transport holds of its requesters' reply
	// SURBs.
	SURBStats() SURBStats
}

// SURBStats is what a transport holds of its requesters' reply SURBs,
// within the bounds of client.SURBConfig.
type SURBStats struct {
	// Held is the SURBs held for the requesters heard from recently, and
	// Senders the requesters (sender tags) they came from.
	Held, Senders int
	// SendersEvicted counts the requesters whose SURBs were dropped whole
	// to stay within the bounds.
	SendersEvicted uint64
	// MaxSenders and MaxHeld are the bounds on Senders and Held (0:
	// unknown).
	MaxSenders, MaxHeld int
}
