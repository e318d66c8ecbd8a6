// Package gateway is wxhub's HTTP front door: WeCom and Official Account
// callbacks, the legacy push API, the drop-in /cgi-bin endpoints, health and metrics.
// It publishes to the bus and answers only after JetStream acknowledged, so an
// acknowledged callback is never lost.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/wecom"
)

// Gateway serves the hub's HTTP endpoints. Create it with New; it is safe for
// concurrent use.
type Gateway struct {
	cfg      Config
	bus      *bus.Bus
	log      *zap.Logger
	now      func() time.Time
	mux      *http.ServeMux
	channels map[string]*channel // key: "wecom/<app>" or "mp/<account>"
	keys     []APIKey
	metrics  *metrics
	registry prometheus.Gatherer
	signer   *signer       // login assertions (auth.go)
	wecom    *wecom.Client // auth/getuserinfo and gettoken for OAuth login
	// noMetrics: /metrics is served elsewhere (WithoutMetrics).
	noMetrics bool
}

// channel is one callback endpoint: its crypto and how to reach its app.
type channel struct {
	kind      string // schemas.ChannelWeCom or schemas.ChannelMP
	name      string
	crypter   *wecom.Crypter // nil for a plain-text-only Official Account
	token     string
	plainText bool
}

// Option customizes a Gateway.
type Option func(*Gateway)

// WithClock injects the clock used for the timestamp window (tests).
func WithClock(now func() time.Time) Option { return func(g *Gateway) { g.now = now } }

// WithRegistry registers the gateway's metrics in r (default: the Prometheus
// default registry) and serves r at /metrics.
func WithRegistry(r *prometheus.Registry) Option {
	return func(g *Gateway) { g.metrics = newMetrics(r); g.registry = r }
}

// WithoutMetrics leaves /metrics off the gateway's listener: for a hub that
// serves /metrics (and /debug) on a separate, private listen address
// (metrics.listen), so the public callback port does not expose them.
func WithoutMetrics() Option { return func(g *Gateway) { g.noMetrics = true } }

// WithHandler mounts an extra handler (the dashboard, the simulator in the demo).
func WithHandler(pattern string, h http.Handler) Option {
	return func(g *Gateway) { g.mux.Handle(pattern, h) }
}

// New builds the gateway for cfg (defaults applied here). It fails on a bad
// app key, which Validate should already have caught.
func New(cfg Config, b *bus.Bus, log *zap.Logger, opts ...Option) (*Gateway, error) {
	cfg = cfg.WithDefaults()
	g := &Gateway{
		cfg:      cfg,
		bus:      b,
		log:      log,
		now:      time.Now,
		mux:      http.NewServeMux(),
		channels: map[string]*channel{},
		keys:     cfg.API.Keys,
	}
	for _, a := range cfg.WeCom.Apps {
		c, err := wecom.NewCrypter(a.Token, a.EncodingAESKey, cfg.WeCom.CorpID)
		if err != nil {
			return nil, fmt.Errorf("gateway: wecom app %s: %w", a.Name, err)
		}
		g.channels["wecom/"+a.Name] = &channel{kind: "wecom", name: a.Name, crypter: c, token: a.Token}
	}
	for _, a := range cfg.MP.Accounts {
		ch := &channel{kind: "mp", name: a.Name, token: a.Token, plainText: a.PlainText}
		if a.EncodingAESKey != "" {
			c, err := wecom.NewCrypter(a.Token, a.EncodingAESKey, a.AppID)
			if err != nil {
				return nil, fmt.Errorf("gateway: mp account %s: %w", a.Name, err)
			}
			ch.crypter = c
		}
		g.channels["mp/"+a.Name] = ch
	}
	var err error
	if g.signer, err = newSigner(cfg.Auth, log); err != nil {
		return nil, err
	}
	g.wecom = wecom.NewClient(cfg.WeCom.APIBase)
	for _, o := range opts {
		o(g)
	}
	if g.metrics == nil {
		g.metrics = newMetrics(prometheus.DefaultRegisterer)
		g.registry = prometheus.DefaultGatherer
	}
	g.routes()
	return g, nil
}

func (g *Gateway) routes() {
	g.mux.HandleFunc("GET /wecom/{app}/callback", g.callback("wecom"))
	g.mux.HandleFunc("POST /wecom/{app}/callback", g.callback("wecom"))
	g.mux.HandleFunc("GET /mp/{app}/callback", g.callback("mp"))
	g.mux.HandleFunc("POST /mp/{app}/callback", g.callback("mp"))
	g.mux.HandleFunc("POST /api/v1/messages", g.pushMessage)
	g.mux.HandleFunc("GET /api/v1/messages/{id}", g.messageStatus)
	g.mux.HandleFunc("POST /api/v1/chats", g.createChat)
	g.authRoutes()
	g.mux.HandleFunc("GET /cgi-bin/gettoken", g.dropInToken)
	g.mux.HandleFunc("POST /cgi-bin/message/send", g.dropInSend)
	g.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	g.mux.HandleFunc("GET /readyz", g.ready)
	if !g.noMetrics {
		g.mux.Handle("GET /metrics", promhttp.HandlerFor(g.registry, promhttp.HandlerOpts{}))
	}
}

// Handler returns the gateway's HTTP handler.
func (g *Gateway) Handler() http.Handler { return g.mux }

func (g *Gateway) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := g.bus.Ready(ctx); err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ready\n"))
}

// Serve listens on cfg.Gateway.Listen until ctx is done, then shuts down
// gracefully: requests in flight (and their JetStream publishes) finish.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           g.mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) {
		return e
	}
	return err
}
