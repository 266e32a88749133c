package handlers

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
)

func constHandler(reply string) Handler {
	return HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		return []byte(reply), nil
	})
}

func TestRouterDispatch(t *testing.T) {
	var r Router
	if err := r.Register(ServiceInfo{Name: "a"}, constHandler("A")); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(ServiceInfo{Name: "b"}, HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		return append([]byte(req.Service+":"), req.Data...), nil
	})); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ service, data, want string }{
		{"a", "x", "A"},
		{"b", "hello", "b:hello"},
	} {
		got, err := r.Handle(context.Background(), &Request{Service: tt.service, Data: []byte(tt.data)})
		if err != nil || string(got) != tt.want {
			t.Errorf("Handle(%s) = %q, %v; want %q", tt.service, got, err, tt.want)
		}
	}
}

func TestRouterUnknownService(t *testing.T) {
	var r Router
	for _, name := range []string{"missing", "", "Not.Valid", strings.Repeat("x", 1000)} {
		_, err := r.Handle(context.Background(), &Request{Service: name})
		if CodeOf(err) != CodeUnknownService {
			t.Errorf("Handle(%.20q) error = %v, want code %s", name, err, CodeUnknownService)
		}
		if len(err.Error()) > 200 {
			t.Errorf("Handle(%.20q) echoed a long name back: %d bytes", name, len(err.Error()))
		}
	}
}

func TestRouterRegisterRejects(t *testing.T) {
	var r Router
	if err := r.Register(ServiceInfo{Name: "kv"}, constHandler("")); err != nil {
		t.Fatal(err)
	}
	err := r.Register(ServiceInfo{Name: "kv"}, constHandler(""))
	if !errors.Is(err, ErrDuplicateService) {
		t.Errorf("duplicate: err = %v, want ErrDuplicateService", err)
	}
	for _, name := range []string{"", "KV", ".kv", "-kv", "_kv", "k v", "k/v", "kv\x00", "é", strings.Repeat("a", 65)} {
		if err := r.Register(ServiceInfo{Name: name}, constHandler("")); err == nil {
			t.Errorf("Register(%q) succeeded, want error", name)
		}
	}
	if err := r.Register(ServiceInfo{Name: "nilhandler"}, nil); err == nil {
		t.Error("Register with nil handler succeeded")
	}
	if got := r.Services(); len(got) != 1 {
		t.Errorf("Services() = %v after rejected registrations, want only kv", got)
	}
}

func TestRouterRemoveAndServices(t *testing.T) {
	var r Router
	for _, name := range []string{"zeta", "alpha", "mid.dle", "9lives"} {
		if err := r.Register(ServiceInfo{Name: name, Description: "d-" + name}, constHandler(name)); err != nil {
			t.Fatal(err)
		}
	}
	want := []ServiceInfo{{"9lives", "d-9lives"}, {"alpha", "d-alpha"}, {"mid.dle", "d-mid.dle"}, {"zeta", "d-zeta"}}
	if got := r.Services(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Services() = %v, want %v", got, want)
	}
	if !r.Remove("alpha") {
		t.Error("Remove(alpha) = false")
	}
	if r.Remove("alpha") {
		t.Error("second Remove(alpha) = true")
	}
	if _, err := r.Handle(context.Background(), &Request{Service: "alpha"}); CodeOf(err) != CodeUnknownService {
		t.Errorf("after Remove: err = %v", err)
	}
	if err := r.Register(ServiceInfo{Name: "alpha"}, constHandler("again")); err != nil {
		t.Errorf("re-register after Remove: %v", err)
	}
}

// TestRouterConcurrent registers, removes and dispatches at once; run under
// -race it checks the router's locking.
func TestRouterConcurrent(t *testing.T) {
	var r Router
	if err := r.Register(ServiceInfo{Name: "stable"}, constHandler("s")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("churn%d", w)
			for range 200 {
				_ = r.Register(ServiceInfo{Name: name}, constHandler(name))
				_ = r.Services()
				r.Remove(name)
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				got, err := r.Handle(context.Background(), &Request{Service: "stable"})
				if err != nil || string(got) != "s" {
					t.Errorf("Handle(stable) = %q, %v", got, err)
					return
				}
				_, err = r.Handle(context.Background(), &Request{Service: fmt.Sprintf("churn%d", w)})
				if err != nil && CodeOf(err) != CodeUnknownService {
					t.Errorf("Handle(churn) = %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

var serviceNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

func TestValidServiceName(t *testing.T) {
	for _, name := range []string{"a", "kv", "echo", "0", "a.b_c-d", strings.Repeat("z", 64)} {
		if !ValidServiceName(name) {
			t.Errorf("ValidServiceName(%q) = false", name)
		}
	}
	for _, name := range []string{"", "A", ".a", "a/b", "a b", "ä", strings.Repeat("z", 65), "a\n"} {
		if ValidServiceName(name) {
			t.Errorf("ValidServiceName(%q) = true", name)
		}
	}
}

// FuzzValidServiceName checks the hand-written validator against the
// obvious regular expression.
func FuzzValidServiceName(f *testing.F) {
	for _, s := range []string{"", "a", "kv", "a.b", "-a", "A", strings.Repeat("a", 64), strings.Repeat("a", 65), "a\n", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if got, want := ValidServiceName(name), serviceNamePattern.MatchString(name); got != want {
			t.Fatalf("ValidServiceName(%q) = %v, regexp says %v", name, got, want)
		}
	})
}
