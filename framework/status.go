package framework

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"html/template"
	"net/http"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/framework/descriptor"
)

// PathStatus is the status page, for people: GET / of the HTTP endpoint.
const PathStatus = "/"

//go:embed status.html
var statusHTML string

var statusTemplate = template.Must(template.New("status").Parse(statusHTML))

// The page's only style and script, inline: the page loads nothing else.
const (
	statusStyle = `body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
table{border-collapse:collapse;margin:.5em 0}th,td{text-align:left;padding:.25em .8em;border-bottom:1px solid #ddd;vertical-align:top}
.facts th{width:7em}input#address{font-family:monospace;font-size:1em;max-width:100%}code{font-size:.95em}
.note{color:#666}[data-state="running"] .state{color:#070}[data-state="not running"] .state,[data-state^="down"] .state{color:#b00}
#health[data-ok="false"]{color:#b00}`
	statusScript = `document.getElementById("copy")?.addEventListener("click", function () {
  var a = document.getElementById("address"), said = document.getElementById("copied");
  var done = function () { said.textContent = "copied"; };
  a.select();
  if (navigator.clipboard) {
    navigator.clipboard.writeText(a.value).then(done, function () { if (document.execCommand("copy")) done(); });
  } else if (document.execCommand("copy")) {
    done();
  }
});`
)

// statusCSP allows the page exactly its inline style and script and
// nothing else: no other origin, no frames, no forms.
var statusCSP = "default-src 'none'; style-src " + cspHash(statusStyle) + "; script-src " + cspHash(statusScript) +
	"; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// statusPage is what the template shows.
type statusPage struct {
	Style            template.CSS
	Script           template.JS
	Health           Health
	HealthText       string
	Address          string
	AddressError     string
	Key, KeyNote     string
	NetworkType      string
	NetworkDirectory string
	MaxRequest       int
	MaxReply         int
	Timeout          time.Duration
	Services         []descriptor.Service
	Plugins          []statusPlugin
	RecentMinutes    int
	Since            time.Duration
	Outcomes         []statusOutcome
}

type statusPlugin struct {
	Name, State, Error string
	Restarts           int
	Services           []string
}

type statusOutcome struct {
	Name          string
	Recent, Total uint64
}

// serveStatus answers GET / with a page for the provider's operator: the
// address (with a button that copies it), the key, the network, the
// services, every plugin with its state, restarts and the reason it is not
// running, and the requests of the last minutes and since the start by
// outcome. It shows what /healthz, /address and /metrics say, in one
// place, as plain HTML that loads nothing from anywhere.
func (h *Host) serveStatus(w http.ResponseWriter, r *http.Request) {
	now := h.cfg.Now()
	page := statusPage{
		Style:         template.CSS(statusStyle),
		Script:        template.JS(statusScript),
		Health:        h.Health(),
		Key:           address.EncodeKey(h.Key()),
		KeyNote:       "the provider's own key, which signs its descriptor",
		NetworkType:   h.network.Type,
		MaxRequest:    h.cfg.Limits.MaxRequestSize,
		MaxReply:      h.cfg.Limits.MaxReplySize,
		Timeout:       h.cfg.Limits.RequestTimeout,
		RecentMinutes: recentMinutes,
		Since:         now.Sub(h.created).Round(time.Second),
	}
	switch {
	case page.Health.OK:
		page.HealthText = "Healthy: the transport is connected and every plugin that started is up."
	case page.Health.Transport != "connected":
		page.HealthText = "Not healthy: the transport is not connected to the mixnet."
	default:
		page.HealthText = "Not healthy: a plugin is down (below)."
	}
	if h.network.Type == descriptor.NetworkPeapod {
		page.NetworkDirectory = h.network.Directory
	}
	if info, err := h.info(); err != nil {
		page.AddressError = err.Error()
	} else {
		page.Address = info.Address.String()
		page.Services = info.Services
		if string(h.Key()) == string(info.Address.Identity[:]) {
			page.KeyNote = "the identity key of the address, which signs the descriptor"
		}
	}
	for _, p := range page.Health.Plugins {
		sp := statusPlugin{Name: p.Name, Restarts: p.Restarts, Services: p.Services, Error: p.Error, State: "running"}
		switch {
		case p.Skipped:
			sp.State = "not running"
		case !p.Up:
			sp.State = "down, restarting"
		}
		page.Plugins = append(page.Plugins, sp)
	}
	recent, total := h.outcomes.read(now)
	for i, name := range outcomes {
		page.Outcomes = append(page.Outcomes, statusOutcome{Name: name, Recent: recent[i], Total: total[i]})
	}
	var b bytes.Buffer
	if err := statusTemplate.Execute(&b, page); err != nil {
		h.log.Error().Err(err).Msg("rendering the status page")
		http.Error(w, "the status page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", statusCSP)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(b.Bytes())
}
