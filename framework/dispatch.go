package framework

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/framework/envelope"
	"github.com/peapod-mixnet/peapod/handlers"
)

// receiveRetryDelay is how long the receive loop waits after the transport
// failed to deliver a message for a reason other than closing.
const receiveRetryDelay = 100 * time.Millisecond

// shutdownReplyTimeout bounds each reply sent after the drain deadline,
// when the requests still running or queued are answered with an error.
const shutdownReplyTimeout = time.Second

// job is one accepted request, waiting in the queue or running.
type job struct {
	tag     address.SenderTag
	req     *envelope.Request
	entry   *cacheEntry
	arrived time.Time
}

// seq is the seniority of the job's requester (see replyCache).
func (j *job) seq() uint64 { return j.entry.sender.seq }

// receiveLoop reads messages from the transport until the intake stops.
func (h *Host) receiveLoop() {
	defer close(h.recvDone)
	for {
		msg, err := h.transport.Receive(h.recvCtx)
		if err != nil {
			if h.recvCtx.Err() != nil || errors.Is(err, ErrTransportClosed) {
				return
			}
			h.log.Warn().Err(err).Msg("receiving from the transport")
			select {
			case <-time.After(receiveRetryDelay):
			case <-h.recvCtx.Done():
				return
			}
			continue
		}
		h.accept(msg)
	}
}

// accept turns one message into a job, or answers it at once: with the
// remembered reply of a repeated request, or with an error when the request
// is too large, malformed, or finds the queue full.
func (h *Host) accept(msg Message) {
	arrived := h.cfg.Now()
	if msg.SenderTag == nil {
		// Nobody to answer: the sender attached no reply SURBs.
		h.log.Info().Int("bytes", len(msg.Data)).Msg("message without reply SURBs dropped")
		h.metrics.dropped.WithLabelValues("no_reply_surbs").Inc()
		return
	}
	tag := *msg.SenderTag
	if len(msg.Data) > h.cfg.Limits.MaxRequestSize {
		// Answered with the request's id when its head names it, so that
		// the requester's call fails at once instead of waiting.
		h.refuse(tag, envelope.PeekID(msg.Data), serviceNone, arrived, handlers.Errorf(handlers.CodeTooLarge,
			"request of %d bytes; the limit is %d", len(msg.Data), h.cfg.Limits.MaxRequestSize))
		return
	}
	req, err := envelope.ParseRequest(msg.Data)
	if err != nil {
		var rerr *envelope.RequestError
		if !errors.As(err, &rerr) {
			rerr = &envelope.RequestError{Reason: "unreadable request"}
		}
		h.refuse(tag, rerr.ID, serviceNone, arrived, handlers.Errorf(handlers.CodeBadRequest, "%s", rerr.Reason))
		return
	}
	entry, reply, found := h.cache.begin(tag, req.ID, arrived)
	switch found {
	case lookupDone:
		h.metrics.duplicates.Inc()
		h.sendReply(tag, reply)
		return
	case lookupRunning, lookupRunningDropped:
		// The first copy's worker sends the reply for this one too (up to
		// maxDuplicateWaiters).
		h.metrics.duplicates.Inc()
		return
	}
	j := &job{tag: tag, req: req, entry: entry, arrived: arrived}
	ok, out := h.queue.push(j)
	if !ok {
		h.overloaded(j)
	}
	if out != nil {
		h.overloaded(out) // pushed out by a requester with fewer queued
	}
}

// overloaded refuses a job the queue will not hold, and forgets it, so
// that a retry runs.
func (h *Host) overloaded(j *job) {
	h.cache.abort(j.entry)
	h.refuse(j.tag, j.req.ID, h.serviceLabel(j.req.Service), j.arrived,
		handlers.Errorf(handlers.CodeOverloaded, "the provider is busy; retry later"))
}

// refuse answers a request that will not run, and counts it.
func (h *Host) refuse(tag address.SenderTag, id, service string, arrived time.Time, e *handlers.Error) {
	b, err := (&envelope.Reply{ID: id, Err: e}).AppendJSON(nil)
	if err != nil {
		h.log.Error().Err(err).Msg("encoding an error reply")
		return
	}
	h.sendReply(tag, b)
	h.count(service, e.Code, arrived)
}

// worker runs jobs from the queue until it is closed and empty.
func (h *Host) worker() {
	defer h.workers.Done()
	for {
		j, ok := h.queue.pop()
		if !ok {
			return
		}
		h.run(j)
	}
}

// run handles one job and sends its reply, and the same reply to the
// duplicates that arrived meanwhile.
func (h *Host) run(j *job) {
	if h.workCtx.Err() != nil {
		// Shutting down past the drain deadline: no new work. Forget the
		// request, so that a retry runs after a restart.
		h.cache.abort(j.entry)
		h.refuse(j.tag, j.req.ID, h.serviceLabel(j.req.Service), j.arrived,
			handlers.Errorf(handlers.CodeOverloaded, "the provider is shutting down; retry later"))
		return
	}
	h.metrics.inFlight.Inc()
	data, err := h.handler.Handle(h.workCtx, &handlers.Request{
		Service:   j.req.Service,
		ID:        j.req.ID,
		Requester: h.requesters.id(j.tag),
		Data:      j.req.Data,
	})
	h.metrics.inFlight.Dec()
	reply, code := h.buildReply(j.req.ID, data, err)
	dups := h.cache.finish(j.entry, reply, h.cfg.Now())
	for range 1 + dups {
		h.sendReply(j.tag, reply)
	}
	h.count(h.serviceLabel(j.req.Service), code, j.arrived)
}

// buildReply encodes a handler's outcome as a reply, and returns the error
// code it carries ("" for a success).
func (h *Host) buildReply(id string, data []byte, err error) ([]byte, string) {
	if err != nil {
		e := requesterError(err)
		return h.errorReply(id, e), e.Code
	}
	if len(data) > h.cfg.Limits.MaxReplySize {
		e := handlers.Errorf(handlers.CodeTooLarge, "reply of %d bytes; the limit is %d", len(data), h.cfg.Limits.MaxReplySize)
		return h.errorReply(id, e), e.Code
	}
	b, encErr := (&envelope.Reply{ID: id, Data: data}).AppendJSON(nil)
	if encErr != nil {
		h.log.Error().Err(encErr).Msg("encoding a reply")
		e := handlers.Errorf(handlers.CodeHandlerFailed, "the reply could not be encoded")
		return h.errorReply(id, e), e.Code
	}
	return b, ""
}

// requesterError returns what the requester is told about a handler's
// failure: the code and message of a *handlers.Error with a valid code;
// otherwise the code alone with a generic message, since an arbitrary
// error's text may say more than the requester should learn.
func requesterError(err error) *handlers.Error {
	var e *handlers.Error
	if errors.As(err, &e) && e != nil && envelope.ValidCode(e.Code) {
		return e
	}
	switch code := handlers.CodeOf(err); code {
	case handlers.CodeTimeout:
		return handlers.Errorf(code, "no reply in time")
	default:
		if errors.Is(err, context.Canceled) {
			return handlers.Errorf(handlers.CodeHandlerFailed, "the request was cancelled: the provider is shutting down")
		}
		return handlers.Errorf(handlers.CodeHandlerFailed, "the handler failed")
	}
}

func (h *Host) errorReply(id string, e *handlers.Error) []byte {
	b, err := (&envelope.Reply{ID: id, Err: e}).AppendJSON(nil)
	if err != nil {
		// Only an invalid code can fail, and requesterError never gives one.
		b, _ = (&envelope.Reply{ID: id, Err: &handlers.Error{Code: handlers.CodeHandlerFailed}}).AppendJSON(nil)
	}
	return b
}

// sendReply hands a reply to the transport, bounded by ReplyTimeout, or by
// shutdownReplyTimeout once the drain deadline has passed.
func (h *Host) sendReply(tag address.SenderTag, reply []byte) {
	timeout := h.cfg.Limits.ReplyTimeout
	if h.workCtx.Err() != nil {
		timeout = min(timeout, shutdownReplyTimeout)
	}
	ctx, cancel := context.WithTimeout(h.replyCtx, timeout)
	defer cancel()
	if err := h.transport.Reply(ctx, tag, reply); err != nil {
		h.metrics.replyFailed.Inc()
		h.log.Warn().Err(err).Msg("reply not sent")
	}
}

// count records a request's outcome and latency.
func (h *Host) count(service, code string, arrived time.Time) {
	outcome, now := outcomeLabel(code), h.cfg.Now()
	h.metrics.requests.WithLabelValues(service, outcome).Inc()
	h.metrics.duration.WithLabelValues(service).Observe(now.Sub(arrived).Seconds())
	h.outcomes.add(now, outcome)
}

// serviceLabel returns name if the provider offers that service, else a
// placeholder, so that metric labels stay few.
func (h *Host) serviceLabel(name string) string {
	if h.localNames[name] {
		return name
	}
	for _, s := range h.supervisor.Services() {
		if s.Name == name {
			return name
		}
	}
	return serviceUnknown
}

func sortServices(s []handlers.ServiceInfo) {
	sort.Slice(s, func(i, j int) bool { return s[i].Name < s[j].Name })
}
