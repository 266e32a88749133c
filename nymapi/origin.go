package nymapi

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// ParseOrigin checks a web origin as a user writes it for
// Config.AllowedOrigins ("http://localhost:5173") and returns it in the
// form browsers send in the Origin header: scheme and host in lower case,
// the port only when it is not the scheme's default, no path.
func ParseOrigin(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("nymapi: origin %q is not scheme://host[:port]", s)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("nymapi: origin %q has more than scheme://host[:port]", s)
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, nil
}

// checkOrigin admits a WebSocket handshake: one without an Origin header
// (not from a web page), from the server's own origin, from an allowed
// origin, or one Config.CheckOrigin admits. A refused one is logged with
// what to do about it.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if u, err := url.Parse(origin); err == nil && strings.EqualFold(u.Host, r.Host) {
		return true
	}
	if normal, err := ParseOrigin(origin); err == nil && s.origins[normal] {
		return true
	}
	if s.cfg.CheckOrigin != nil && s.cfg.CheckOrigin(r) {
		return true
	}
	s.stats.originsRefused.Add(1)
	s.log.Warn().Str("origin", origin).Msg("refused a WebSocket connection from a web page of another origin; " +
		"if it is your application's, allow it with --allow-origin (or allow_origin in [websocket])")
	return false
}
