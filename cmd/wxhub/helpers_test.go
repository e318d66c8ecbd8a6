package main

import (
	"context"
	"testing"
	"time"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/hub/hubtest"
	"github.com/wxhub/wxhub/wecom/sim"
)

// e2e is a whole hub in this process on an embedded NATS server, with the
// simulator playing WeCom on real HTTP (see hub/hubtest).
type e2e struct {
	cfg     *config.Config
	sim     *sim.Server
	hubAddr string
	bus     *bus.Bus
	h       *hubtest.Hub
}

// withOnly runs only the named components (as --only does).
func withOnly(components ...string) hubtest.Option { return hubtest.WithOnly(components...) }

// withConfig changes the hub's config before it starts.
func withConfig(f func(*config.Config)) hubtest.Option { return hubtest.WithConfig(f) }

func startE2E(t *testing.T, opts ...hubtest.Option) *e2e {
	t.Helper()
	h := hubtest.Start(t, opts...)
	return &e2e{cfg: h.Config, sim: h.Sim, hubAddr: h.Addr, bus: h.Bus, h: h}
}

func waitCtx(t *testing.T, d time.Duration) context.Context { return hubtest.Ctx(t, d) }
