package handlers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
)

// MaxServiceNameLen is the longest valid service name, in bytes.
const MaxServiceNameLen = 64

// ServiceInfo describes a service a provider offers.
type ServiceInfo struct {
	// Name is the name requesters use to address the service; see
	// [ValidServiceName].
	Name string
	// Description is a short human-readable summary of the service.
	Description string
}

// ValidServiceName reports whether name is a valid service name: 1 to
// [MaxServiceNameLen] bytes, made of lower-case ASCII letters, digits, '.',
// '_' and '-', starting with a letter or digit (the pattern
// [a-z0-9][a-z0-9._-]{0,63}).
func ValidServiceName(name string) bool {
	if len(name) == 0 || len(name) > MaxServiceNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// ErrDuplicateService is returned by [Router.Register] when a service of the
// same name is already registered.
var ErrDuplicateService = errors.New("handlers: service already registered")

type route struct {
	info ServiceInfo
	h    Handler
}

// Router dispatches requests to the handler registered for their service.
//
// A Router is itself a [Handler]: Handle looks up req.Service and calls that
// service's handler, or fails with [CodeUnknownService]. Services can be
// registered and removed at any time, concurrently with requests (plugins
// come and go while requests flow); a request already dispatched to a handler
// runs to completion even if its service is removed meanwhile.
//
// The zero Router is empty and ready to use. A Router must not be copied
// after first use.
type Router struct {
	mu     sync.RWMutex
	routes map[string]route
}

var _ Handler = (*Router)(nil)

// Register adds a service. It fails if info.Name is not a valid service name
// (see [ValidServiceName]), if h is nil, or, with [ErrDuplicateService], if
// a service of that name is already registered.
func (r *Router) Register(info ServiceInfo, h Handler) error {
	if !ValidServiceName(info.Name) {
		return fmt.Errorf("handlers: invalid service name %q", info.Name)
	}
	if h == nil {
		return fmt.Errorf("handlers: nil handler for service %q", info.Name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.routes[info.Name]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicateService, info.Name)
	}
	if r.routes == nil {
		r.routes = make(map[string]route)
	}
	r.routes[info.Name] = route{info: info, h: h}
	return nil
}

// Remove removes the named service and reports whether it was registered.
func (r *Router) Remove(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.routes[name]
	delete(r.routes, name)
	return ok
}

// Services lists the registered services, sorted by name.
func (r *Router) Services() []ServiceInfo {
	r.mu.RLock()
	out := make([]ServiceInfo, 0, len(r.routes))
	for _, rt := range r.routes {
		out = append(out, rt.info)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Handle dispatches req to the handler of req.Service, or fails with
// [CodeUnknownService] if no such service is registered.
func (r *Router) Handle(ctx context.Context, req *Request) ([]byte, error) {
	r.mu.RLock()
	rt, ok := r.routes[req.Service]
	r.mu.RUnlock()
	if !ok {
		if !ValidServiceName(req.Service) {
			// Do not echo arbitrary requester bytes back.
			return nil, Errorf(CodeUnknownService, "invalid service name")
		}
		return nil, Errorf(CodeUnknownService, "no service named %q", req.Service)
	}
	return rt.h.Handle(ctx, req)
}
