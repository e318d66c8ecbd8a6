package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/gateway"
	"github.com/wxhub/wxhub/wecom"
	"github.com/wxhub/wxhub/wecom/sim"
	"github.com/wxhub/wxhub/wecom/sim/load"
)

// Hub is a hub started for one phase.
type Hub struct {
	Addr string   // the gateway's host:port
	Bus  *bus.Bus // for checks on the streams
	// Stop ends the hub and waits for it.
	Stop func() error
}

// HubFunc starts a hub from cfg, its gateway on ln, running only the named
// components (nil: all), and returns once it is ready. cmd/wxhub supplies it
// (it owns the wiring); tests may supply a smaller one.
type HubFunc func(ctx context.Context, cfg *config.Config, ln net.Listener, only []string) (*Hub, error)

// env is one phase's world: a simulator (with the reply recorder in front), a
// hub configured for the simulated corp, a fresh data directory.
type env struct {
	sim     *sim.Server
	simCfg  sim.Config
	rec     *load.Recorder
	simSrv  *http.Server
	simAddr string
	cfg     *config.Config
	hub     *Hub
	child   *childHub // when the hub runs as `wxhub run` (hub is then child.Hub)
	undoGC  func()    // restores the bench process's GC percent (see generatorGC)
	dir     string
	target  load.Target
}

// envSpec shapes an env.
type envSpec struct {
	users     []string
	simLimits sim.Limits
	tune      func(*config.Config) // bench settings on top of the demo-like config
	only      []string
	child     bool // run the hub as a `wxhub run` child process (Options.Binary)
}

// newEnv starts the simulator and the hub, in this process or as a child
// process. close undoes it.
func newEnv(ctx context.Context, o *Options, spec envSpec) (*env, error) {
	dir, err := os.MkdirTemp(o.TempDir, "wxhub-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: temp dir: %w", err)
	}
	e := &env{dir: dir}
	ok := false
	defer func() {
		if !ok {
			e.close()
		}
	}()
	scfg := sim.DemoConfig()
	scfg.Users = make([]sim.User, 0, len(spec.users)+len(scfg.Users))
	scfg.Users = append(scfg.Users, sim.DemoConfig().Users...)
	for _, u := range spec.users {
		scfg.Users = append(scfg.Users, sim.User{UserID: u, Name: u, Department: []int64{1}})
	}
	scfg.Limits = spec.simLimits
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: simulator listen: %w", err)
	}
	scfg.Listen = ln.Addr().String()
	e.simAddr = scfg.Listen
	s, err := sim.New(scfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	e.sim, e.simCfg = s, s.Config()
	e.rec = load.NewRecorder(s, "")
	e.simSrv = &http.Server{Handler: e.rec, ReadHeaderTimeout: 10 * time.Second}
	go e.simSrv.Serve(ln)

	e.cfg = hubConfig(e.simCfg, dir)
	if spec.tune != nil {
		spec.tune(e.cfg)
	}
	app := e.simCfg.Apps[0]
	e.target = load.Target{App: app.Name, AgentID: app.AgentID, CorpID: e.simCfg.CorpID, Token: app.Token, EncodingAESKey: app.EncodingAESKey}
	if spec.child {
		e.undoGC = generatorGC()
		c, err := startChild(ctx, o, e)
		if err != nil {
			return nil, err
		}
		e.child, e.hub = c, c.Hub
	} else {
		hln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("bench: gateway listen: %w", err)
		}
		e.cfg.Gateway.Listen = hln.Addr().String()
		if err := e.cfg.Validate(); err != nil {
			hln.Close()
			return nil, err
		}
		h, err := o.Hub(ctx, e.cfg, hln, spec.only)
		if err != nil {
			hln.Close()
			return nil, fmt.Errorf("bench: start hub: %w", err)
		}
		e.hub = h
		e.target.URL = "http://" + h.Addr
		s.SetGatewayURL(e.target.URL)
	}
	ok = true
	return e, nil
}

func (e *env) close() error {
	var errs []error
	if e.hub != nil {
		errs = append(errs, e.hub.Stop())
	}
	if e.simSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, e.simSrv.Shutdown(ctx))
		cancel()
	}
	if e.undoGC != nil {
		e.undoGC()
	}
	if e.dir != "" {
		errs = append(errs, os.RemoveAll(e.dir))
	}
	return errors.Join(errs...)
}

// generatorGCPercent is the bench process's GOGC while the hub runs as a child
// process. The bench then holds only the load generator and the simulator, which
// share the machine's cores with the hub: with Go's default their collections
// came every few hundred milliseconds at 1,000 msg/s and showed up in the hub's
// figures as callbacks sent late and replies recorded late. The bench is
// short-lived, so it trades memory for fewer collections. The hub keeps the
// binary's default; phases that run the hub in this process (ingest, outbound,
// --in-process) keep the default too, so the hub is never measured with a
// setting it does not ship with.
const generatorGCPercent = 400

// generatorGC sets generatorGCPercent unless GOGC is in the environment (then
// that value holds, for the child too) and returns the undo.
func generatorGC() (undo func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	prev := debug.SetGCPercent(generatorGCPercent)
	return func() { debug.SetGCPercent(prev) }
}

// benchAPIKey is the push-API key of the bench's hub.
const benchAPIKey = "bench-key"

// hubConfig is the hub's config for the simulated corp: what `wxhub demo`
// builds, on a random NATS port and a fresh data directory.
func hubConfig(s sim.Config, dir string) *config.Config {
	c := &config.Config{
		NATS:    bus.Config{DataDir: filepath.Join(dir, "nats"), Port: -1},
		Gateway: gateway.Config{Listen: "127.0.0.1:0"},
		WeCom:   wecom.Config{APIBase: "http://" + s.Listen, CorpID: s.CorpID},
		API:     gateway.APIConfig{Keys: []gateway.APIKey{{Name: "bench", Key: benchAPIKey, Apps: []string{"*"}}}},
		Log:     config.Log{Level: "error", Format: "console"},
	}
	for _, a := range s.Apps {
		c.WeCom.Apps = append(c.WeCom.Apps, wecom.AppConfig{Name: a.Name, AgentID: a.AgentID, Secret: a.Secret,
			Token: a.Token, EncodingAESKey: a.EncodingAESKey})
	}
	for _, a := range s.Accounts {
		c.MP.Accounts = append(c.MP.Accounts, wecom.AccountConfig{Name: a.Name, AppID: a.AppID,
			Token: a.Token, EncodingAESKey: a.EncodingAESKey})
	}
	c.Defaults()
	return c
}

// noCorpLimits switches off the corp-wide API ceilings and the daily quota in
// the hub's sender (the simulator gets the same through simNoCorpLimits). The
// per-member limits stay WeCom's: the e2e phase spreads its load over enough
// members that they never bind.
func noCorpLimits(c *config.Config) {
	c.Sender.Limits.CorpAPIMinute = -1
	c.Sender.Limits.CorpAPIHour = -1
	c.Sender.Limits.AppDailyRecipients = 0
}

var simNoCorpLimits = sim.Limits{APIPerMinute: -1, APIPerHour: -1, AppDailyRecipients: -1}

type simSent = sim.SentMessage
