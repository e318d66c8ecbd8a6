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
	"golang.org/x/time/rate"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/gateway/hooks"
	"github.com/wxhub/wxhub/internal/media"
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
	reg      prometheus.Registerer // where the gateway's metrics go (a private registry without WithRegistry)
	signer   *signer               // login assertions (auth.go)
	wecom    *wecom.Client         // auth/getuserinfo and gettoken for OAuth login, the pass-through
	mpClient *wecom.MPClient       // Official Accounts' token and media/get (inbound media)
	caps     *apiCaps              // the pass-through's per-API caps
	dir      Directory             // expands departments and tags; nil: sent as given
	mp       mpState               // Official Accounts: passive replies, the 48-hour window (mp_*.go)
	urls     *media.URLFetcher     // media a push names by URL (media.go)
	inbound  *media.Inbound        // inbound media fetched from WeCom, cached in the store (media.go)
	// noMetrics: /metrics is served elsewhere (WithoutMetrics).
	noMetrics bool
}

// channel is one callback endpoint: its crypto and how to reach its app.
type channel struct {
	kind      string // schemas.ChannelWeCom or schemas.ChannelMP
	name      string
	corp      string         // WeCom: the app's corp id (EventData.Corp)
	crypter   *wecom.Crypter // nil for a plain-text-only Official Account
	token     string
	plainText bool
}

// Option customizes a Gateway.
type Option func(*Gateway)

// WithClock injects the clock used for the timestamp window (tests).
func WithClock(now func() time.Time) Option { return func(g *Gateway) { g.now = now } }

// WithRegistry registers the gateway's metrics in r and serves r at /metrics.
// Without it, as in every component, the metrics go to a private registry
// nobody scrapes and /metrics is not served.
func WithRegistry(r *prometheus.Registry) Option {
	return func(g *Gateway) { g.metrics = newMetrics(r); g.registry = r; g.reg = r }
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
		caps:     &apiCaps{perMinute: cfg.PassThroughPerMinute, lim: map[string]*rate.Limiter{}},
	}
	for _, a := range cfg.WeCom.Apps {
		c, err := wecom.NewCrypter(a.Token, a.EncodingAESKey, cfg.WeCom.CorpOf(a))
		if err != nil {
			return nil, fmt.Errorf("gateway: wecom app %s: %w", a.Name, err)
		}
		g.channels["wecom/"+a.Name] = &channel{kind: "wecom", name: a.Name, corp: cfg.WeCom.CorpOf(a), crypter: c, token: a.Token}
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
	g.mpClient = wecom.NewMPClient(cfg.MP.APIBase)
	g.urls = media.NewURLFetcher(mediaFetchTimeout)
	g.inbound = media.NewInbound(b, g.fetchWeComMedia)
	for _, o := range opts {
		o(g)
	}
	if g.metrics == nil {
		g.reg = prometheus.NewRegistry() // counted, scraped by nobody
		g.metrics = newMetrics(g.reg)
	}
	if len(cfg.Hooks) > 0 {
		h, err := hooks.New(cfg.Hooks, g.publishHook, log.Named("hooks"), hooks.WithRegisterer(g.reg))
		if err != nil {
			return nil, err
		}
		h.MaxBodyBytes = cfg.MaxBodyBytes
		g.mux.Handle("POST /api/v1/hooks/{name}", h)
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
	g.mux.HandleFunc("POST /api/v1/meetings", g.createMeeting)
	g.authRoutes()
	g.mediaRoutes() // media.go
	g.mux.HandleFunc("GET /cgi-bin/gettoken", g.dropInToken)
	g.mux.HandleFunc("POST /cgi-bin/message/send", g.dropInSend)
	g.mpDropInRoutes()                                                       // Official Accounts: /cgi-bin/token, message/custom/send, message/template/send
	g.mux.HandleFunc("POST /api/v1/messages/{id}/card", g.updateCardHandler) // cards.go
	g.mux.HandleFunc("DELETE /api/v1/messages/{id}", g.recallHandler)
	g.mux.HandleFunc("POST /cgi-bin/message/recall", g.dropInRecall)
	g.mux.HandleFunc("POST /cgi-bin/message/update_template_card", g.dropInUpdateCard)
	g.mux.HandleFunc("GET /cgi-bin/{api...}", g.passThrough)
	g.mux.HandleFunc("POST /cgi-bin/{api...}", g.passThrough)
	g.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	g.mux.HandleFunc("GET /readyz", g.ready)
	if g.registry != nil && !g.noMetrics {
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

// Handle mounts h on the gateway's mux after New (handlers that need the
// gateway's token source, such as the identity pages). Call it before Serve.
func (g *Gateway) Handle(pattern string, h http.Handler) { g.mux.Handle(pattern, h) }

// AppToken is the access token of the WeCom app named app, shared with the
// sender through wxhub_tokens; fresh asks for a new one after WeCom called
// the last one expired.
func (g *Gateway) AppToken(ctx context.Context, app string, fresh bool) (string, error) {
	a, ok := g.cfg.WeCom.App(app)
	if !ok {
		return "", fmt.Errorf("%w: no app named %q", ErrTokenUnavailable, app)
	}
	return g.appToken(ctx, a, fresh)
}

// Authorize reports whether r carries a configured API key, and, when names
// are given, one of those keys.
func (g *Gateway) Authorize(r *http.Request, names ...string) bool {
	k, ok := g.authenticate(r)
	if !ok {
		return false
	}
	if len(names) == 0 {
		return true
	}
	for _, n := range names {
		if n == k.Name {
			return true
		}
	}
	return false
}
