package nymapi

import (
	"sync"
	"time"

	"github.com/peapod-mixnet/peapod/wsapi"
)

// outFrame is one response waiting to be written to a connection.
type outFrame struct {
	resp wsapi.Response
	// form is the frame type of the request this answers; formUnset takes
	// the connection's frame type at the time of writing (messages received
	// from the mixnet, failures reported later).
	form form
	// size counts against the queue's byte bound: the message data, or
	// the text of an error.
	size int
	// msg is set on a message from the backend: the writer reports it
	// written, and every holder of the frame lets go of it (see outMessage).
	msg *outMessage
}

// pushResult is what became of a push.
type pushResult uint8

const (
	pushed   pushResult = iota
	rejected            // the queue is closed
	timedOut            // the queue is full and the writer took nothing for too long
)

// isMessage reports whether f is a message from the backend, rather than
// an answer to a request or a failure reported later.
func (f outFrame) isMessage() bool { return f.msg != nil }

// outQueue is a connection's bounded outgoing queue. Many goroutines push;
// one, the connection's writer, pops, in the order pushed.
//
// Answers (to the connection's requests, and failures reported later) and
// messages from the backend are bounded apart, each by maxFrames and
// maxBytes: an application that sends requests and reads nothing fills
// only its answers' share, which holds back its own requests, and the
// messages that every connection gets still find room (the broadcast
// waits for a connection whose messages' share is full).
type outQueue struct {
	maxFrames, maxBytes int

	mu       sync.Mutex
	frames   []outFrame
	head     int         // frames[head:] are queued
	held     [2]occupied // answers, messages
	closed   bool
	progress time.Time     // when the writer last took a frame, or got work in an empty queue
	space    chan struct{} // closed and replaced when a frame leaves or the queue closes

	avail chan struct{} // holds a token while frames are queued
}

// occupied is what one kind of frame holds of a queue.
type occupied struct{ frames, bytes int }

func (q *outQueue) share(f outFrame) *occupied {
	if f.isMessage() {
		return &q.held[1]
	}
	return &q.held[0]
}

func newOutQueue(maxFrames, maxBytes int) *outQueue {
	return &outQueue{
		maxFrames: maxFrames,
		maxBytes:  maxBytes,
		space:     make(chan struct{}),
		avail:     make(chan struct{}, 1),
	}
}

// push queues f, waiting while its kind's share is full, until the writer
// has taken nothing for patience while it had frames to take: only then is
// the queue stuck. A frame larger than the byte bound goes in when its
// kind's share is empty.
func (q *outQueue) push(f outFrame, patience time.Duration) pushResult {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return rejected
		}
		sh := q.share(f)
		if sh.frames < q.maxFrames && (sh.frames == 0 || sh.bytes+f.size <= q.maxBytes) {
			if len(q.frames) == q.head {
				q.progress = time.Now() // the writer has work from now on
			}
			q.frames = append(q.frames, f)
			sh.frames++
			sh.bytes += f.size
			q.mu.Unlock()
			select {
			case q.avail <- struct{}{}:
			default:
			}
			return pushed
		}
		space, wait := q.space, time.Until(q.progress.Add(patience))
		q.mu.Unlock()

		if wait <= 0 {
			return timedOut
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-space:
		case <-timer.C:
		}
	}
}

// pop takes the oldest frame, if any.
func (q *outQueue) pop() (outFrame, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.frames) {
		return outFrame{}, false
	}
	f := q.frames[q.head]
	q.frames[q.head] = outFrame{}
	q.head++
	if q.head == len(q.frames) {
		q.frames, q.head = q.frames[:0], 0
	} else if q.head > len(q.frames)/2 && q.head >= 64 {
		q.frames, q.head = append(q.frames[:0], q.frames[q.head:]...), 0
	}
	sh := q.share(f)
	sh.frames--
	sh.bytes -= f.size
	q.progress = time.Now()
	close(q.space)
	q.space = make(chan struct{})
	return f, true
}

// close rejects every later push, wakes the pushers that wait, and drops
// the frames still queued.
func (q *outQueue) close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	dropped := q.frames[q.head:]
	q.frames, q.head, q.held = nil, 0, [2]occupied{}
	close(q.space)
	q.mu.Unlock()
	for _, f := range dropped {
		if f.msg != nil {
			f.msg.unref()
		}
	}
}

// length is the number of frames queued.
func (q *outQueue) length() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.frames) - q.head
}
