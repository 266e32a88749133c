package directory

import (
	"context"
	"testing"
	"time"
)

func TestParamsServedWithTopology(t *testing.T) {
	srv := startServer(t, Config{Params: &Params{MeanMixDelay: int64(15 * time.Millisecond)}})
	top, err := srv.client.Topology(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if top.Params == nil || top.Params.MeanMixDelay != int64(15*time.Millisecond) {
		t.Fatalf("params = %+v, want a 15ms mean mix delay", top.Params)
	}

	plain := startServer(t, Config{})
	top, err = plain.client.Topology(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if top.Params != nil {
		t.Fatalf("a server without params served %+v", top.Params)
	}

	if _, err := New(Config{DataDir: t.TempDir(), Params: &Params{MeanMixDelay: -1}}); err == nil {
		t.Fatal("a negative mean mix delay was accepted")
	}
	bad := Topology{Params: &Params{MeanMixDelay: -5}}
	if err := bad.Validate(); err == nil {
		t.Fatal("Validate accepted a negative mean mix delay")
	}
}
