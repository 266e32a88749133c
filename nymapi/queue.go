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
	// size counts against the queue's byte bound: the message data.
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

// outQueue is a connection's bounded outgoing queue. Many goroutines push;
// one, the connection's writer, pops.
type outQueue struct {
	maxFrames, maxBytes int

	mu       sync.Mutex
	frames   []outFrame
	head     int // frames[head:] are queued
	bytes    int
	closed   bool
	progress time.Time     // when the writer last took a frame, or got work in an empty queue
	space    chan struct{} // closed and replaced when a frame leaves or the queue closes

	avail chan struct{} // holds a token while frames are queued
}

func newOutQueue(maxFrames, maxBytes int) *outQueue {
	return &outQueue{
		maxFrames: maxFrames,
		maxBytes:  maxBytes,
		space:     make(chan struct{}),
		avail:     make(chan struct{}, 1),
	}
}

// push queues f, waiting while the queue is full, until the writer has
// taken nothing for patience while it had frames to take: only then is the
// queue stuck. A frame larger than the byte bound
// goes in when the queue is empty.
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
		n := len(q.frames) - q.head
		if n < q.maxFrames && (n == 0 || q.bytes+f.size <= q.maxBytes) {
			if n == 0 {
				q.progress = time.Now() // the writer has work from now on
			}
			q.frames = append(q.frames, f)
			q.bytes += f.size
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
	q.bytes -= f.size
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
	q.frames, q.head, q.bytes = nil, 0, 0
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
