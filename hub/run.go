package hub

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/dashboard"
	"github.com/wxhub/wxhub/gateway"
	"github.com/wxhub/wxhub/internal/sharedmetrics"
	"github.com/wxhub/wxhub/router"
	"github.com/wxhub/wxhub/sender"
	"github.com/wxhub/wxhub/tracing"
	"github.com/wxhub/wxhub/wecom"
)

// Options are the knobs `run`, `demo` and the tests turn. The zero value runs
// every component, with a metrics registry of its own.
type Options struct {
	// Only lists the components to run: "gateway", "router", "sender",
	// "connector:<name>". Empty runs them all.
	Only map[string]bool
	// ConfigPath, when set, is watched: router rules reload when it changes and
	// on each value from Reload (the CLI sends SIGHUP there).
	ConfigPath string
	Reload     <-chan struct{}
	// Builtins is the registration list used to reload the config. Default Builtins.
	Builtins []connectors.Builtin
	// Handlers are mounted on the gateway beside its own (the simulator, sample pages).
	Handlers map[string]http.Handler
	// Registry for metrics; default: a new one with the Go and process collectors.
	Registry *prometheus.Registry
	// Listener for the gateway; default: listen on gateway.listen.
	Listener net.Listener
	// Ready is called once every component started.
	Ready func(h *Hub)
	// SharedMetricsEvery is how often this process puts its counters on the
	// bus for the dashboards (sharedmetrics); zero: every 5 s. Tests shorten it.
	SharedMetricsEvery time.Duration
	// PollWait bounds one pull of the router and the connectors, and so how long
	// shutdown waits for them; zero keeps their defaults (5 s). Tests shorten it.
	PollWait time.Duration
}

// Hub is a running set of components in this process.
type Hub struct {
	Setup *Setup
	Bus   *bus.Bus
	Addr  string // the gateway's address, when it runs
	// MetricsAddr is metrics.listen's address, when set.
	MetricsAddr string
}

// ParseOnly reads --only: comma-separated components.
func ParseOnly(s string) (map[string]bool, error) {
	if s == "" {
		return nil, nil
	}
	only := map[string]bool{}
	for _, c := range strings.Split(s, ",") {
		c = strings.TrimSpace(c)
		switch {
		case c == "gateway", c == "router", c == "sender", strings.HasPrefix(c, "connector:"):
			only[c] = true
		default:
			return nil, fmt.Errorf("--only: unknown component %q (gateway, router, sender, connector:<name>)", c)
		}
	}
	return only, nil
}

// run is the state the start functions share.
type run struct {
	o        Options
	setup    *Setup
	bus      *bus.Bus
	log      *zap.Logger
	reg      *prometheus.Registry
	group    *errgroup.Group
	helpText atomic.Pointer[string]
	hub      *Hub
	// metricsKey is this process's key in wxhub_metrics (sharedmetrics).
	metricsKey string
}

func (r *run) want(c string) bool { return len(r.o.Only) == 0 || r.o.Only[c] }

func (r *run) setHelp(rc router.Config) { t := rc.Help(); r.helpText.Store(&t) }

// startFunc starts one component's goroutines in r.group and returns what
// releases its resources once they returned.
type startFunc func(ctx context.Context, r *run) (stop func(), err error)

// Run opens the bus and runs the selected components until ctx is done or
// one of them fails; then everything stops and the bus drains.
func Run(ctx context.Context, s *Setup, log *zap.Logger, o Options) error {
	if o.Builtins == nil {
		o.Builtins = Builtins
	}
	b, err := openBus(ctx, s, log, o.Only)
	if err != nil {
		return err
	}
	defer b.Close()
	shutdownTracing, err := tracing.Setup(ctx, s.Config.Tracing, tracing.WithLogger(log))
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdownTracing(sctx)
	}()
	r := &run{o: o, setup: s, bus: b, log: log, reg: o.Registry, hub: &Hub{Setup: s, Bus: b}}
	if r.reg == nil {
		r.reg = newRegistry()
	}
	r.setHelp(s.Rules())
	g, ctx := errgroup.WithContext(ctx)
	r.group = g
	r.metricsKey = sharedmetrics.Key()
	if !onlyConnectors(o.Only) { // a connector's own NATS login may not write wxhub_metrics
		g.Go(func() error {
			sharedmetrics.Publish(ctx, b, busMetricsLeftOut{r.reg}, r.metricsKey, processLabel(o.Only, r.metricsKey), o.SharedMetricsEvery, log.Named("metrics"))
			return nil
		})
	}
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	for _, start := range []startFunc{startRouter, startSender, startConnectors, startGateway, startOps} {
		stop, err := start(ctx, r)
		if err != nil {
			return err
		}
		if stop != nil {
			stops = append(stops, stop)
		}
	}
	if o.Ready != nil {
		o.Ready(r.hub)
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// openBus connects: the embedded server or the cluster for a whole hub; a
// connectors-only process on a cluster dials as its own NATS user, which may
// not declare streams and receives on its own inboxes.
func openBus(ctx context.Context, s *Setup, log *zap.Logger, only map[string]bool) (*bus.Bus, error) {
	open, natsCfg := bus.Open, s.Config.NATS
	// Generated logins (bus.CredentialsFile): one per connector, and this
	// process's own when it runs one component alone.
	for _, c := range s.Connectors {
		natsCfg.Connectors = append(natsCfg.Connectors, c.Name)
	}
	if natsCfg.Login == "" && natsCfg.URL != "" {
		natsCfg.Login = bus.LoginFor(slices.Sorted(maps.Keys(only)))
	}
	if onlyConnectors(only) && natsCfg.URL != "" {
		open = bus.Dial
		if name, ok := soleConnector(only); ok && natsCfg.User != "" && natsCfg.InboxPrefix == "" {
			natsCfg.InboxPrefix = bus.InboxPrefix(name)
		}
	}
	return open(ctx, natsCfg, log.Named("bus"))
}

func startRouter(ctx context.Context, r *run) (func(), error) {
	if !r.want("router") {
		return nil, nil
	}
	rt, err := router.New(r.setup.Rules(), r.bus, r.log, router.WithPollWait(r.o.PollWait), router.WithRegisterer(r.reg))
	if err != nil {
		return nil, err
	}
	r.group.Go(func() error { return rt.Run(ctx) })
	r.group.Go(func() error { r.bus.KeepRouteAnchor(ctx, bus.RouteAnchorEvery); return nil })
	if r.o.ConfigPath != "" {
		load := func(path string) (router.Config, error) {
			s, err := Load(path, r.o.Builtins)
			if err != nil {
				return router.Config{}, err
			}
			rc := s.Rules()
			r.setHelp(rc)
			return rc, nil
		}
		r.group.Go(func() error { return rt.WatchFile(ctx, r.o.ConfigPath, load, r.o.Reload) })
	}
	return nil, nil
}

func startSender(ctx context.Context, r *run) (func(), error) {
	sc := r.setup.Config.SenderConfig()
	if !r.want("sender") || len(sc.Apps) == 0 {
		return nil, nil
	}
	s, err := sender.New(sc, r.bus, wecom.NewClient(r.setup.Config.WeCom.APIBase), r.log, sender.WithRegisterer(r.reg))
	if err != nil {
		return nil, err
	}
	r.group.Go(func() error { return s.Run(ctx) })
	return nil, nil
}

func startConnectors(ctx context.Context, r *run) (func(), error) {
	facts := connectors.HubFacts{
		HelpText:   func() string { return *r.helpText.Load() },
		QuietHours: r.setup.Config.Sender.QuietHours,
		Corps:      r.setup.Config.WeCom.CorpIDs(),
	}
	for _, c := range r.setup.Connectors {
		if !r.want("connector:" + c.Name) {
			continue
		}
		log := r.log.Named("connector." + c.Name)
		h, err := c.New(ctx, connectors.Deps{Bus: r.bus, Logger: log, Registerer: r.reg, Hub: facts})
		if err != nil {
			return nil, fmt.Errorf("connector %s: %w", c.Name, err)
		}
		opts := c.Options
		opts.Name, opts.PollWait, opts.Registerer = c.Name, r.o.PollWait, r.reg
		opts.Partitions = r.setup.Config.NATS.WithDefaults().Partitions
		if opts.Logger == nil {
			opts.Logger = log
		}
		r.group.Go(func() error {
			err := connectors.Run(ctx, r.bus, opts, h)
			if c, ok := h.(io.Closer); ok { // background work of its own (fileshare's scanners)
				c.Close()
			}
			return err
		})
	}
	return nil, nil
}

func startGateway(ctx context.Context, r *run) (func(), error) {
	if !r.want("gateway") {
		return nil, nil
	}
	cfg := r.setup.Config
	gopts := []gateway.Option{gateway.WithRegistry(r.reg)}
	if cfg.Metrics.Listen != "" {
		gopts = append(gopts, gateway.WithoutMetrics()) // served on metrics.listen instead, off the callback port
	}
	var names []string
	for _, c := range r.setup.Connectors {
		names = append(names, c.Name)
	}
	r.reg.MustRegister(dashboard.NewBusCollector(r.bus, names...))
	var stop func()
	if cfg.Dashboard.Enabled() {
		sc := cfg.SenderConfig().WithDefaults()
		d, err := dashboard.New(cfg.Dashboard, r.bus, r.log.Named("dashboard"),
			// Rates of components in other processes too: their counters come over the bus.
			dashboard.WithGatherer(sharedmetrics.NewGatherer(r.reg, r.bus, r.metricsKey)), dashboard.WithConnectors(names...), dashboard.WithSendLimits(sendLimits(cfg.WeCom, sc)...),
			dashboard.WithChallengeTTL(cfg.GatewayConfig().Auth.ChallengeTTL), dashboard.WithSenderConsumer(sc.Consumer))
		if err != nil {
			return nil, err
		}
		stop = func() { d.Close() }
		gopts = append(gopts, gateway.WithHandler(dashboard.Prefix, d.Handler()))
	}
	for pattern, handler := range r.o.Handlers {
		gopts = append(gopts, gateway.WithHandler(pattern, handler))
	}
	dir, err := startDirectoryStore(ctx, r)
	if err != nil {
		return stop, err
	}
	if dir != nil {
		gopts = append(gopts, gateway.WithDirectory(dir)) // departments and tags expanded to members
	}
	gw, err := gateway.New(cfg.GatewayConfig(), r.bus, r.log.Named("gateway"), gopts...)
	if err != nil {
		return stop, err
	}
	ln := r.o.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.GatewayConfig().Listen); err != nil {
			return stop, fmt.Errorf("gateway: %w", err)
		}
	}
	if err := startIdentity(ctx, r, gw, dir); err != nil {
		return stop, err
	}
	r.hub.Addr = ln.Addr().String()
	r.group.Go(func() error { return gw.Serve(ctx, ln) })
	r.log.Info("gateway listening", zap.String("addr", r.hub.Addr))
	return stop, nil
}

// busMetricsLeftOut gathers g without the dashboard's bus collector: JetStream
// state is the same seen from any process, so it is not shared.
type busMetricsLeftOut struct{ g prometheus.Gatherer }

func (b busMetricsLeftOut) Gather() ([]*dto.MetricFamily, error) {
	fams, err := b.g.Gather()
	kept := fams[:0]
	for _, f := range fams {
		if !dashboard.BusMetric(f.GetName()) {
			kept = append(kept, f)
		}
	}
	return kept, err
}

// processLabel names this process on the dashboard: its components and key.
func processLabel(only map[string]bool, key string) string {
	what := "hub"
	if len(only) > 0 {
		what = strings.Join(slices.Sorted(maps.Keys(only)), "+")
	}
	return what + "@" + key
}

// sendLimits are the per-app limits the dashboard draws the send rate against.
func sendLimits(wc wecom.Config, sc sender.Config) []dashboard.SendLimit {
	var out []dashboard.SendLimit
	for _, a := range wc.Apps { // each against its corp's own limit (wecom.corps[].corp_api_minute)
		perMinute := cmp.Or(sc.CorpLimits[wc.CorpOf(a)].CorpAPIMinute, sc.Limits.CorpAPIMinute)
		out = append(out, dashboard.SendLimit{App: a.Name, Name: "corp message/send per minute", PerMinute: float64(perMinute)})
	}
	return out
}

// onlyConnectors reports whether only connectors were asked for.
func onlyConnectors(only map[string]bool) bool {
	for c := range only {
		if !strings.HasPrefix(c, "connector:") {
			return false
		}
	}
	return len(only) > 0
}

// soleConnector names the one connector asked for, if only one was.
func soleConnector(only map[string]bool) (string, bool) {
	if len(only) != 1 {
		return "", false
	}
	for c := range only {
		return strings.CutPrefix(c, "connector:")
	}
	return "", false
}

// newRegistry is a registry with the Go and process collectors. Beside the
// usual go_* families it exports the live heap after the last collection,
// the next collection's goal, the GOGC in force (the heap floor moves it)
// and the CPU the collector used.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(gcRuntimeMetrics)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

var gcRuntimeMetrics = collectors.GoRuntimeMetricsRule{
	Matcher: regexp.MustCompile(`^/gc/heap/(live|goal):bytes$|^/cpu/classes/gc/total:cpu-seconds$|^/gc/gogc:percent$`),
}

// Start runs the hub in the background and returns once every component
// started (or failed to, within 30 s). stop cancels it and waits for it to
// stop, at most 30 s.
func Start(ctx context.Context, s *Setup, log *zap.Logger, o Options) (h *Hub, stop func() error, err error) {
	ready := make(chan *Hub, 1)
	user := o.Ready
	o.Ready = func(h *Hub) {
		if user != nil {
			user(h)
		}
		ready <- h
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, s, log, o) }()
	stop = func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("hub: did not stop within 30 s")
		}
	}
	select {
	case h := <-ready:
		return h, stop, nil
	case err := <-done:
		cancel()
		return nil, nil, fmt.Errorf("hub: failed to start: %w", err)
	case <-time.After(30 * time.Second):
		stop()
		return nil, nil, errors.New("hub: did not start within 30 s")
	}
}
