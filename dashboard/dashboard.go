// Package dashboard is the operations web page of wxhub and its read API: live
// queues and lag per connector (SSE), send rates against WeCom's limits, recent
// errors, dead-letter browse/replay/drop, connector health and a message tracer.
// It reads everything from JetStream (streams, consumers, the status bucket) and
// from a Prometheus Gatherer, so it imports no other component. Its page and
// assets are embedded and need no network beyond the hub itself.
//
// Every page and API needs a login (a token from the config, or WeCom
// scan-to-login for the members listed in it); sessions are
// HMAC-signed HttpOnly SameSite=Strict cookies, and every POST carries a CSRF
// token bound to the session.
package dashboard

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/wxhub/wxhub/bus"
)

//go:embed web
var webFS embed.FS

// Prefix is where the dashboard is mounted: gateway.WithHandler(Prefix, d.Handler()).
const Prefix = "/dashboard/"

// SendLimit is a ceiling the send rate is drawn against: messages a minute for
// App ("" = the whole corp, all apps summed). The lead fills these from the
// sender's limits (e.g. corp_api_minute).
type SendLimit struct {
	App       string  `json:"app"`
	Name      string  `json:"name"`
	PerMinute float64 `json:"per_minute"`
}

// Option customizes a Dashboard.
type Option func(*Dashboard)

// WithConnectors names the configured connectors: the overview lists each,
// as stalled when work waits for one that has no consumer.
func WithConnectors(names ...string) Option { return func(d *Dashboard) { d.connectors = names } }

// WithGatherer reads counters (rates, sends, errors) from g; without it the
// overview shows no rates.
func WithGatherer(g prometheus.Gatherer) Option { return func(d *Dashboard) { d.gatherer = g } }

// WithSendLimits sets the limits drawn against the send rate.
func WithSendLimits(l ...SendLimit) Option {
	return func(d *Dashboard) { d.limits = append(d.limits, l...) }
}

// WithClock injects the clock of sessions and rates (tests).
func WithClock(now func() time.Time) Option { return func(d *Dashboard) { d.now = now } }

// Dashboard serves the operations page. Safe for concurrent use; Close it to
// stop its background watcher.
type Dashboard struct {
	cfg        Config
	connectors []string // configured: listed even while their consumers are missing
	bus        *bus.Bus
	log        *zap.Logger
	now        func() time.Time
	gatherer   prometheus.Gatherer
	limits     []SendLimit
	users      map[string]User
	userList   []User
	sess       *sessions
	mux        *http.ServeMux
	static     fs.FS

	rates  *rateTracker
	errors *errorRing

	snapMu sync.Mutex
	snap   *Overview
	snapAt time.Time

	loginMu      sync.Mutex
	loginLimiter map[string]*rate.Limiter

	challengeTTL   time.Duration
	wecom          wecomLogin
	senderConsumer string // the sender's durable on WXHUB_OUT, for the tracer

	cancel context.CancelFunc
	done   chan struct{}
}

// New builds the dashboard. It fails when cfg is invalid or admits nobody.
func New(cfg Config, b *bus.Bus, log *zap.Logger, opts ...Option) (*Dashboard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, fmt.Errorf("%w: dashboard.admin_token: no admin_token, users or wecom_users: nobody could log in", ErrConfig)
	}
	if b == nil {
		return nil, fmt.Errorf("dashboard: nil bus")
	}
	if log == nil {
		log = zap.NewNop()
	}
	cfg = cfg.WithDefaults()
	d := &Dashboard{
		cfg:            cfg,
		bus:            b,
		log:            log.Named("dashboard"),
		now:            time.Now,
		users:          map[string]User{},
		mux:            http.NewServeMux(),
		errors:         newErrorRing(50),
		loginLimiter:   map[string]*rate.Limiter{},
		challengeTTL:   DefaultChallengeTTL,
		senderConsumer: DefaultSenderConsumer,
		done:           make(chan struct{}),
	}
	for _, o := range opts {
		o(d)
	}
	d.userList = cfg.users()
	for _, u := range d.userList {
		d.users[u.Name] = u
	}
	d.initWeCom()
	if cfg.SessionKey == "" {
		d.log.Warn("dashboard.session_key is not set: sessions end when the process restarts")
	}
	d.sess = newSessions(cfg.SessionKey, cfg.SessionTTL, d.now)
	d.rates = newRateTracker(time.Minute)
	static, err := fs.Sub(webFS, "web")
	if err != nil {
		return nil, fmt.Errorf("dashboard: assets: %w", err)
	}
	d.static = static
	d.routes()
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go d.watchStatus(ctx)
	return d, nil
}

// Close stops the background status watcher. Safe to call more than once.
func (d *Dashboard) Close() error {
	d.cancel()
	<-d.done
	return nil
}

// Handler serves /dashboard/ (page, assets) and /dashboard/api/... Mount it at
// Prefix; it expects the full request path.
func (d *Dashboard) Handler() http.Handler { return securityHeaders(d.mux) }

func (d *Dashboard) routes() {
	m := d.mux
	m.HandleFunc("GET /dashboard", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
	})
	m.HandleFunc("GET /dashboard/login", d.loginPage)
	m.HandleFunc("GET /dashboard/login.css", d.loginCSS) // the form's style: public, holds nothing
	m.HandleFunc("POST /dashboard/login", d.login)
	m.HandleFunc("GET /dashboard/login.js", d.loginJS) // the QR page's poller: public, holds nothing
	if d.wecomEnabled() {
		m.HandleFunc("POST "+wecomPath, d.wecomStart)
		m.HandleFunc("GET "+wecomPath, d.wecomPage)
		m.HandleFunc("GET "+wecomPath+"/status", d.wecomStatus)
	}
	m.HandleFunc("POST /dashboard/logout", d.post(RoleViewer, d.logout))
	m.HandleFunc("GET /dashboard/{$}", d.page(d.index))
	m.HandleFunc("GET /dashboard/assets/{file}", d.page(d.asset))
	m.HandleFunc("GET /dashboard/api/me", d.api(d.me))
	m.HandleFunc("GET /dashboard/api/overview", d.api(d.overview))
	m.HandleFunc("GET /dashboard/api/events", d.api(d.events))
	m.HandleFunc("GET /dashboard/api/dlq", d.api(d.dlqList))
	m.HandleFunc("GET /dashboard/api/dlq/{seq}", d.api(d.dlqGet))
	m.HandleFunc("POST /dashboard/api/dlq/{seq}/replay", d.post(RoleAdmin, d.dlqReplay))
	m.HandleFunc("POST /dashboard/api/dlq/{seq}/drop", d.post(RoleAdmin, d.dlqDrop))
	m.HandleFunc("GET /dashboard/api/trace", d.api(d.trace))
	// Anything else under the prefix: 404 only after login, so an anonymous
	// caller learns nothing about which paths exist.
	m.HandleFunc("/dashboard/", d.page(func(w http.ResponseWriter, r *http.Request, _ session) {
		http.NotFound(w, r)
	}))
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		// same-origin, not no-referrer: under no-referrer browsers send
		// "Origin: null" on form posts, which the login's CSRF check refuses.
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store")
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.ServeHTTP(w, r)
	})
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, s session)

// session reads and verifies the request's cookie.
func (d *Dashboard) session(r *http.Request) (session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, fmt.Errorf("%w: no cookie", ErrSession)
	}
	s, err := d.sess.verify(c.Value, d.users)
	if err != nil {
		return session{}, err
	}
	// Logged out: refused until it would have expired. A bus that cannot say
	// refuses too: a revoked session must not come back during an outage.
	kv, err := d.bus.KV(r.Context(), bus.BucketSessions)
	if err != nil {
		return session{}, fmt.Errorf("%w: revocation list: %w", ErrSession, err)
	}
	revoked, err := bus.SessionRevoked(r.Context(), kv, s.Nonce)
	if err != nil {
		return session{}, fmt.Errorf("%w: %w", ErrSession, err)
	}
	if revoked {
		return session{}, fmt.Errorf("%w: logged out", ErrSession)
	}
	return s, nil
}

// page guards an HTML page or asset: no session sends the browser to the login form.
func (d *Dashboard) page(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := d.session(r)
		if err != nil {
			http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
			return
		}
		h(w, r, s)
	}
}

// api guards a read API: no session is a 401 in JSON.
func (d *Dashboard) api(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := d.session(r)
		if err != nil {
			writeError(w, http.StatusUnauthorized, "login required")
			return
		}
		h(w, r, s)
	}
}

// post guards a state-changing API: session, role and CSRF token. SameSite=Strict
// already keeps the cookie off cross-site requests; the token also covers
// same-site subdomains and older browsers.
func (d *Dashboard) post(role string, h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := d.session(r)
		if err != nil {
			writeError(w, http.StatusUnauthorized, "login required")
			return
		}
		if !d.sess.checkCSRF(s, r.Header.Get("X-CSRF-Token")) {
			writeError(w, http.StatusForbidden, "missing or wrong X-CSRF-Token")
			return
		}
		if role == RoleAdmin && s.Role != RoleAdmin {
			writeError(w, http.StatusForbidden, "admin role required")
			return
		}
		h(w, r, s)
	}
}

func clientHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return host
}

// allowLogin limits failed logins per client address: 5 a minute, burst 5.
func (d *Dashboard) allowLogin(r *http.Request) *rate.Limiter {
	host := clientHost(r)
	d.loginMu.Lock()
	defer d.loginMu.Unlock()
	l, ok := d.loginLimiter[host]
	if !ok {
		if len(d.loginLimiter) > 10000 { // bounded memory under a spray of addresses
			clear(d.loginLimiter)
		}
		l = rate.NewLimiter(rate.Every(12*time.Second), 5)
		d.loginLimiter[host] = l
	}
	return l
}
