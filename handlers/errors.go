package handlers

import (
	"context"
	"errors"
	"fmt"
)

// The error codes of the request protocol. A reply that reports a failure
// carries one of these codes, or a code defined by the service itself (a
// service may add codes such as "not_found"; they follow the same form:
// lower-case letters, digits and underscores).
const (
	// CodeBadRequest means the request was malformed or invalid for the
	// service: the requester should not retry it unchanged.
	CodeBadRequest = "bad_request"
	// CodeUnknownService means the provider offers no service by that name.
	CodeUnknownService = "unknown_service"
	// CodeHandlerFailed means the handler failed for a reason of its own
	// (a bug, a crash, a plugin that is down); a retry may succeed later.
	CodeHandlerFailed = "handler_failed"
	// CodeTimeout means the handler did not reply in time.
	CodeTimeout = "timeout"
	// CodeOverloaded means the provider is refusing work to protect itself;
	// the requester should retry later.
	CodeOverloaded = "overloaded"
	// CodeTooLarge means the request or its reply exceeds a size limit.
	CodeTooLarge = "too_large"
)

// Error is a failure with a protocol error code, as reported to the requester.
//
// Handlers return an *Error when they know what went wrong, so the requester
// gets a precise code; the Message is a short human-readable explanation
// that may be shown to the requester, so it must not contain secrets.
type Error struct {
	// Code is one of the Code constants, or a service-specific code.
	Code string
	// Message explains the failure; it may be empty.
	Message string
}

// Error returns "code: message", or just the code when there is no message.
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// Errorf returns an [*Error] with the given code and a message formatted as
// with fmt.Sprintf.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the error code to report for err:
//   - "" when err is nil;
//   - the Code of the first [*Error] in err's chain (as found by errors.As),
//     unless that code is empty;
//   - [CodeTimeout] when the chain contains context.DeadlineExceeded;
//   - [CodeHandlerFailed] for anything else.
func CodeOf(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e != nil && e.Code != "" {
		return e.Code
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return CodeTimeout
	}
	return CodeHandlerFailed
}
