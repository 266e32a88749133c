package handlers

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestErrorString(t *testing.T) {
	if got := Errorf(CodeBadRequest, "key %q too long", "k").Error(); got != `bad_request: key "k" too long` {
		t.Errorf("Error() = %q", got)
	}
	if got := (&Error{Code: CodeTimeout}).Error(); got != "timeout" {
		t.Errorf("Error() without message = %q", got)
	}
}

func TestCodeOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"error", Errorf(CodeBadRequest, "x"), CodeBadRequest},
		{"service code", &Error{Code: "not_found"}, "not_found"},
		{"wrapped error", fmt.Errorf("outer: %w", Errorf(CodeTooLarge, "x")), CodeTooLarge},
		{"error beats deadline", errors.Join(context.DeadlineExceeded, Errorf(CodeOverloaded, "x")), CodeOverloaded},
		{"empty code", &Error{Message: "no code"}, CodeHandlerFailed},
		{"deadline", context.DeadlineExceeded, CodeTimeout},
		{"wrapped deadline", fmt.Errorf("rpc: %w", context.DeadlineExceeded), CodeTimeout},
		{"cancelled", context.Canceled, CodeHandlerFailed},
		{"plain", errors.New("disk full"), CodeHandlerFailed},
	}
	for _, tt := range tests {
		if got := CodeOf(tt.err); got != tt.want {
			t.Errorf("%s: CodeOf(%v) = %q, want %q", tt.name, tt.err, got, tt.want)
		}
	}
}
