// Package hubtest starts a whole hub in the test's process: an embedded NATS
// server on a free port, the WeCom simulator on real HTTP, and every
// component (or those WithOnly names) on the demo's corp. The e2e tests, the
// dashboard's browser tests and the conformance kit's hub runs use it.
package hubtest

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/wecom/sim"
)

// Hub is a running hub with its simulator.
type Hub struct {
	Config *config.Config
	Setup  *hub.Setup
	Sim    *sim.Server
	Addr   string // the gateway's host:port
	Bus    *bus.Bus

	builtins []connectors.Builtin
}

// URL is the gateway's base URL.
func (h *Hub) URL() string { return "http://" + h.Addr }

type options struct {
	only     map[string]bool
	mods     []func(*config.Config)
	simMods  []func(*sim.Config)
	builtins []connectors.Builtin
	log      *zap.Logger
}

// Option changes what Start starts.
type Option func(*options)

// WithOnly runs only the named components, as --only does.
func WithOnly(components ...string) Option {
	return func(o *options) {
		o.only = map[string]bool{}
		for _, c := range components {
			o.only[c] = true
		}
	}
}

// WithConfig changes the hub's config before it is validated.
func WithConfig(f func(*config.Config)) Option {
	return func(o *options) { o.mods = append(o.mods, f) }
}

// WithSim changes the simulator's config before it starts.
func WithSim(f func(*sim.Config)) Option {
	return func(o *options) { o.simMods = append(o.simMods, f) }
}

// WithBuiltins replaces the registration list (a test's own connector).
func WithBuiltins(b ...connectors.Builtin) Option {
	return func(o *options) { o.builtins = b }
}

// WithLogger logs the hub to log (default: nothing).
func WithLogger(log *zap.Logger) Option { return func(o *options) { o.log = log } }

// Start starts the simulator and the hub; both stop when the test ends.
func Start(t testing.TB, opts ...Option) *Hub {
	t.Helper()
	o := options{log: zap.NewNop(), builtins: hub.Builtins}
	for _, f := range opts {
		f(&o)
	}
	scfg := sim.DemoConfig()
	scfg.Listen = "127.0.0.1:0"
	for _, m := range o.simMods {
		m(&scfg)
	}
	s, err := sim.New(scfg.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	scfg.Listen = strings.TrimPrefix(s.URL(), "http://")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := hub.DemoConfig(scfg, t.TempDir(), ln.Addr().String())
	cfg.NATS.Port = -1
	for _, m := range o.mods {
		m(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	setup, err := hub.Configure(cfg, o.builtins)
	if err != nil {
		t.Fatal(err)
	}
	s.SetGatewayURL("http://" + ln.Addr().String())
	h, stop, err := hub.Start(context.Background(), setup, o.log, hub.Options{
		Only: o.only, Listener: ln, PollWait: 200 * time.Millisecond, Builtins: o.builtins, SharedMetricsEvery: sharedMetricsEvery})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("hub stopped with %v", err)
		}
	})
	return &Hub{Config: cfg, Setup: setup, Sim: s, Addr: h.Addr, Bus: h.Bus, builtins: o.builtins}
}

// sharedMetricsEvery: the processes' counters reach the dashboard within a
// second (not the default 5 s).
const sharedMetricsEvery = 500 * time.Millisecond

// Join starts a second process's components on h's NATS server (as
// `wxhub run --only ...` against a cluster would), stopped when the test ends.
func Join(t testing.TB, h *Hub, only ...string) {
	t.Helper()
	cfg := *h.Config
	cfg.NATS.URL = h.Bus.ClientURL()
	setup, err := hub.Configure(&cfg, h.builtins)
	if err != nil {
		t.Fatal(err)
	}
	o := hub.Options{Only: map[string]bool{}, PollWait: 200 * time.Millisecond, SharedMetricsEvery: sharedMetricsEvery}
	for _, c := range only {
		o.Only[c] = true
	}
	_, stop, err := hub.Start(context.Background(), setup, zap.NewNop(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop() })
}

// Ctx is a context that ends after d or with the test.
func Ctx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
