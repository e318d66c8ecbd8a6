package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/connectors/echo"
	"github.com/wxhub/wxhub/connectors/erp"
	"github.com/wxhub/wxhub/connectors/help"
	"github.com/wxhub/wxhub/connectors/quiethours"
	"github.com/wxhub/wxhub/connectors/scanlogin"
	"github.com/wxhub/wxhub/dashboard"
	"github.com/wxhub/wxhub/dnd"
	"github.com/wxhub/wxhub/gateway"
	"github.com/wxhub/wxhub/router"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/sender"
	"github.com/wxhub/wxhub/tracing"
	"github.com/wxhub/wxhub/wecom"
)

// hubOptions are the knobs `run`, `demo` and the tests turn.
type hubOptions struct {
	// only lists the components to run ("gateway", "router", "sender",
	// "connector:<name>"); empty runs them all.
	only map[string]bool
	// configPath, when set, is watched: router rules reload on change and SIGHUP.
	configPath string
	// handlers are mounted on the gateway beside its own (the dashboard, the simulator).
	handlers map[string]http.Handler
	// registry for metrics; default: a new one per hub.
	registry *prometheus.Registry
	// listener for the gateway; default: listen on cfg.Gateway.Listen.
	listener net.Listener
	// ready is called once every component started (tests, the demo banner).
	ready func(h *hub)
	// pollWait bounds one pull of the router and the connectors, and so how long
	// shutdown waits for them; zero keeps their defaults (5 s). Tests shorten it.
	pollWait time.Duration
}

// hub is a running set of components in this process.
type hub struct {
	cfg  *config.Config
	bus  *bus.Bus
	addr string // the gateway's address, when it runs
}

// builtinRules come before the configured rules: quiet-hours commands are a
// hub feature that no user rule should shadow.
func builtinRules(cfg *config.Config) router.Config {
	rc := cfg.Router
	rules := []router.Rule{{
		Name: "builtin-dnd", Description: "免打扰 22:00-08:00 / 取消免打扰 / 我的免打扰：设置免打扰时段",
		Match: router.Match{MsgType: router.Strings{"text"}, Content: quiethours.Rule}, To: router.Strings{quiethours.Name},
	}}
	// Scan-to-login: every scancode_waitmsg goes to scanlogin, which ignores codes
	// that are not wxhub logins; continue lets configured rules see the scan too.
	rules = append(rules, router.Rule{
		Name: "builtin-scanlogin", Match: router.Match{Event: router.Strings{"scancode_waitmsg"}},
		To: router.Strings{scanlogin.Name}, Continue: true,
	}, router.Rule{
		Name:  "builtin-scanlogin-confirm",
		Match: router.Match{Event: router.Strings{"template_card_event"}, TaskID: router.Strings{schemas.AuthTaskPrefix + "*"}}, To: router.Strings{scanlogin.Name},
	})
	if cfg.Connectors.ERP != nil {
		rules = append(rules, router.Rule{
			Name: "builtin-erp", Description: "订单 1001 / 库存 A-100：查询 ERP",
			Match: router.Match{MsgType: router.Strings{"text", "voice"}, Content: erp.CommandRule}, To: router.Strings{erp.Name},
		}, router.Rule{
			Name:  "builtin-erp-approvals",
			Match: router.Match{Event: router.Strings{"template_card_event"}, TaskID: router.Strings{erp.TaskIDPrefix + "*"}}, To: router.Strings{erp.Name},
		})
	}
	rules = append(rules, rc.Rules...)
	if *cfg.Connectors.Echo {
		rules = append(rules, router.Rule{
			Name: "builtin-echo", Description: "echo <文字>：原样回复，检查链路",
			Match: router.Match{MsgType: router.Strings{"text"}, Content: `^(?i:echo)\s`}, To: router.Strings{echo.Name},
		})
	}
	rc.Rules = rules
	return rc
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

func parseOnly(s string) (map[string]bool, error) {
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

// runHub opens the bus and runs the selected components until ctx is done or
// one of them fails; then everything stops and the bus drains.
func runHub(ctx context.Context, cfg *config.Config, log *zap.Logger, o hubOptions) error {
	want := func(c string) bool { return len(o.only) == 0 || o.only[c] }
	open, natsCfg := bus.Open, cfg.NATS
	if onlyConnectors(o.only) && natsCfg.URL != "" {
		// A connector process logs in as its own NATS user, which may not declare
		// streams (the hub's other processes did) and receives on its own inboxes.
		open = bus.Dial
		if name, ok := soleConnector(o.only); ok && natsCfg.User != "" && natsCfg.InboxPrefix == "" {
			natsCfg.InboxPrefix = bus.InboxPrefix(name)
		}
	}
	b, err := open(ctx, natsCfg, log.Named("bus"))
	if err != nil {
		return err
	}
	defer b.Close()
	h := &hub{cfg: cfg, bus: b}
	reg := o.registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(gcRuntimeMetrics)),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	shutdownTracing, err := tracing.Setup(ctx, cfg.Tracing, tracing.WithLogger(log))
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdownTracing(sctx)
	}()
	g, ctx := errgroup.WithContext(ctx)

	rules := builtinRules(cfg)
	var helpText atomic.Pointer[string]
	setHelp := func(rc router.Config) { t := rc.Help(); helpText.Store(&t) }
	setHelp(rules)

	if want("router") {
		r, err := router.New(b, rules, router.Options{Logger: log, PollWait: o.pollWait, Registerer: reg})
		if err != nil {
			return err
		}
		g.Go(func() error { return r.Run(ctx) })
		g.Go(func() error { b.KeepRouteAnchor(ctx, bus.RouteAnchorEvery); return nil })
		if o.configPath != "" {
			load := func(path string) (router.Config, error) {
				c, err := config.Load(path)
				if err != nil {
					return router.Config{}, err
				}
				rc := builtinRules(c)
				setHelp(rc)
				return rc, nil
			}
			g.Go(func() error { return r.WatchFile(ctx, o.configPath, load) })
		}
	}

	if want("sender") && len(cfg.SenderConfig().Apps) > 0 {
		client := wecom.NewClient(cfg.WeCom.APIBase)
		s, err := sender.New(cfg.SenderConfig(), b, client, log, sender.WithRegisterer(reg))
		if err != nil {
			return err
		}
		g.Go(func() error { return s.Run(ctx) })
	}

	conns := map[string]connectors.Handler{
		help.Name: help.Handler(func() string { return *helpText.Load() }),
	}
	if want("connector:" + quiethours.Name) {
		dndKV, err := b.KV(ctx, bus.BucketDND)
		if err != nil {
			return err
		}
		var defaultQuiet *dnd.Window
		if cfg.Sender.QuietHours != "" {
			w, _ := dnd.ParseWindow(cfg.Sender.QuietHours) // validated with the config
			defaultQuiet = &w
		}
		conns[quiethours.Name] = quiethours.Handler(dnd.NewStore(dndKV), defaultQuiet, time.Now)
	}
	if want("connector:" + scanlogin.Name) {
		authKV, err := b.KV(ctx, bus.BucketAuth)
		if err != nil {
			return err
		}
		conns[scanlogin.Name] = scanlogin.Handler(authKV, scanlogin.Options{
			Confirm: cfg.Auth.Confirm == nil || *cfg.Auth.Confirm, Logger: log.Named("connector." + scanlogin.Name)})
	}
	if *cfg.Connectors.Echo {
		conns[echo.Name] = echo.Handler()
	}
	options := map[string]connectors.Options{}
	if cfg.Connectors.ERP != nil {
		c, err := erp.New(*cfg.Connectors.ERP, log.Named("connector.erp"))
		if err != nil {
			return err
		}
		conns[erp.Name] = c
		options[erp.Name] = cfg.Connectors.ERP.RunnerOptions(log.Named("connector.erp"))
	}
	for name, handler := range conns {
		if !want("connector:" + name) {
			continue
		}
		opts, ok := options[name]
		if !ok {
			opts = connectors.Options{Name: name, Concurrency: cfg.Connectors.Concurrency, MaxDeliver: cfg.Connectors.MaxDeliver,
				Logger: log.Named("connector." + name)}
		}
		opts.Partitions, opts.PollWait, opts.Registerer = cfg.NATS.Partitions, o.pollWait, reg
		g.Go(func() error { return connectors.Run(ctx, b, opts, handler) })
	}

	if want("gateway") {
		gopts := []gateway.Option{gateway.WithRegistry(reg)}
		reg.MustRegister(dashboard.NewBusCollector(b))
		if cfg.Dashboard.Enabled() {
			d, err := dashboard.New(cfg.Dashboard, b, log.Named("dashboard"),
				dashboard.WithGatherer(reg), dashboard.WithSendLimits(sendLimits(cfg)...),
				dashboard.WithChallengeTTL(cfg.Auth.ChallengeTTL), dashboard.WithSenderConsumer(cfg.SenderConfig().WithDefaults().Consumer))
			if err != nil {
				return err
			}
			defer d.Close()
			gopts = append(gopts, gateway.WithHandler(dashboard.Prefix, d.Handler()))
		}
		for pattern, handler := range o.handlers {
			gopts = append(gopts, gateway.WithHandler(pattern, handler))
		}
		gw, err := gateway.New(cfg, b, log.Named("gateway"), gopts...)
		if err != nil {
			return err
		}
		ln := o.listener
		if ln == nil {
			if ln, err = net.Listen("tcp", cfg.Gateway.Listen); err != nil {
				return fmt.Errorf("gateway: %w", err)
			}
		}
		h.addr = ln.Addr().String()
		g.Go(func() error { return gw.Serve(ctx, ln) })
		log.Info("gateway listening", zap.String("addr", h.addr))
	}
	if o.ready != nil {
		o.ready(h)
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// sendLimits are the per-app limits the dashboard draws the send rate against.
func sendLimits(cfg *config.Config) []dashboard.SendLimit {
	l := cfg.SenderConfig().WithDefaults().Limits
	var out []dashboard.SendLimit
	for _, a := range cfg.WeCom.Apps {
		out = append(out, dashboard.SendLimit{App: a.Name, Name: "corp message/send per minute", PerMinute: float64(l.CorpAPIMinute)})
	}
	return out
}

// gcRuntimeMetrics adds to the usual go_* families the live heap after the
// last collection (go_gc_heap_live_bytes: what the hub really holds, where
// RSS also counts freed memory not yet returned), the next collection's
// goal, the GOGC in force (go_gc_gogc_percent: the heap floor moves it, see
// internal/gcfloor), and the CPU the collector used (go_cpu_classes_gc_total_cpu_seconds_total):
// at a steady rate the NATS server's duplicate-id bookkeeping is most of the
// live heap, and marking it is what lengthens the tail latency.
var gcRuntimeMetrics = collectors.GoRuntimeMetricsRule{
	Matcher: regexp.MustCompile(`^/gc/heap/(live|goal):bytes$|^/cpu/classes/gc/total:cpu-seconds$|^/gc/gogc:percent$`),
}
