package client

import (
	"testing"
	"time"
)

func TestHealthScores(t *testing.T) {
	var h health
	now := time.Now()
	// A node never blamed is good; crediting it first must not stall on the
	// zero time of its new score.
	h.adjust([]string{"a"}, -0.5, now)
	if !h.good("a", now) || !h.good("unknown", now) {
		t.Fatal("fresh nodes are not good")
	}
	for range 3 {
		h.adjust([]string{"dead"}, 1, now)
	}
	if h.good("dead", now) {
		t.Fatal("a node blamed three times is still good")
	}
	// Blame decays: after a few half-lives the node is tried again.
	if !h.good("dead", now.Add(3*healthHalfLife)) {
		t.Fatal("blame did not decay")
	}
	nodes := []netNode{{identity: "dead"}, {identity: "alive"}}
	for range 50 {
		if h.pick(nodes, now).identity != "alive" {
			t.Fatal("picked the blamed node while a good one was there")
		}
	}
	h.adjust([]string{"alive"}, 5, now)
	seen := map[string]bool{}
	for range 100 {
		seen[h.pick(nodes, now).identity] = true
	}
	if !seen["dead"] || !seen["alive"] {
		t.Fatal("with every node blamed, pick must still choose among all")
	}
}
