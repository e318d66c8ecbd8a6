// Package oidc is an OpenID Connect provider backed by WeCom identity, so a
// legacy web app logs its users in with any off-the-shelf OIDC library and no
// wxhub code. Employees authenticate by wxhub's scan-to-login on a desktop
// browser (the challenge in wxhub_auth, bound by the scanlogin connector) or
// by WeCom OAuth2 inside the WeCom app; a client may require the step-up PIN.
//
// Authorization code flow only, with PKCE (S256) required of every client and
// a client secret per registered client; redirect URIs are compared exactly.
// ID tokens are JWTs signed with RS256 through go-jose; the signing keys live
// in the wxhub_oidc_keys bucket, so every gateway replica signs and publishes
// the same keys; they rotate, and an old key stays in the JWKS until the
// tokens it signed have expired. Logins, codes and tokens live in wxhub_oidc.
// See docs/identity.md.
package oidc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/identity/pin"
	"github.com/wxhub/wxhub/wecom/oauth"
)

// ErrConfig is wrapped by every configuration error; the message names the key.
var ErrConfig = errors.New("oidc: invalid config")

// Config is the oidc: section.
//
//	oidc:
//	  issuer: https://hub.example.com      # discovery at {issuer}/.well-known/openid-configuration
//	  app: helpdesk                        # WeCom app whose members log in
//	  clients:
//	    - client_id: payroll
//	      client_secret: ${PAYROLL_OIDC_SECRET}
//	      name: 薪资系统
//	      redirect_uris: [https://payroll.example.com/oidc/callback]
//	      require_pin: true
//	      pin_max_age: 5m
type Config struct {
	// Issuer is the hub's public base URL, without a trailing slash; the
	// endpoints are {issuer}/oidc/... Required.
	Issuer string `yaml:"issuer"`
	// App is the WeCom app whose members log in (scan and OAuth). Required.
	App string `yaml:"app"`
	// WeComWebLogin offers WeCom's own web login (企业微信扫码登录, the
	// wwlogin/sso page) on the desktop login page, beside the hub's scan-to-login.
	// It needs the app's trusted domain (可信域名) set to the issuer's host.
	WeComWebLogin bool `yaml:"wecom_web_login"`
	// Clients are the relying parties. At least one.
	Clients []Client `yaml:"clients"`
	// LoginTTL bounds a login from authorize to the code. Default 5m.
	LoginTTL time.Duration `yaml:"login_ttl"`
	// ChallengeTTL is the QR code's lifetime. Default 2m.
	ChallengeTTL time.Duration `yaml:"challenge_ttl"`
	// CodeTTL: the authorization code's lifetime. Default 60s.
	CodeTTL time.Duration `yaml:"code_ttl"`
	// IDTokenTTL and AccessTokenTTL: default 1h each.
	IDTokenTTL     time.Duration `yaml:"id_token_ttl"`
	AccessTokenTTL time.Duration `yaml:"access_token_ttl"`
	// RefreshTokenTTL: 0 (default) issues no refresh tokens; at most 720h.
	RefreshTokenTTL time.Duration `yaml:"refresh_token_ttl"`
	// KeyRotation: a new signing key this long after the last. Default 168h (a week).
	KeyRotation time.Duration `yaml:"key_rotation"`
	// KeyPropagation: a new key is published this long before it signs, so
	// every replica and client cache has it. Default 1m.
	KeyPropagation time.Duration `yaml:"key_propagation"`
}

// Client is one relying party.
type Client struct {
	ID     string `yaml:"client_id"`
	Secret string `yaml:"client_secret"`
	// Name is shown on the login page and the WeCom confirm card. Default: ID.
	Name string `yaml:"name"`
	// RedirectURIs are compared exactly (scheme, host, port, path, query).
	RedirectURIs []string `yaml:"redirect_uris"`
	// RequirePIN asks for the step-up PIN on every login to this client (as
	// acr_values=urn:wxhub:acr:pin does for one request).
	RequirePIN bool `yaml:"require_pin"`
	// PINMaxAge: a PIN verified this recently is not asked again. Default 0: ask each login.
	PINMaxAge time.Duration `yaml:"pin_max_age"`
}

var validClientID = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.LoginTTL, 5*time.Minute)
	def(&c.ChallengeTTL, 2*time.Minute)
	def(&c.CodeTTL, time.Minute)
	def(&c.IDTokenTTL, time.Hour)
	def(&c.AccessTokenTTL, time.Hour)
	def(&c.KeyRotation, 7*24*time.Hour)
	def(&c.KeyPropagation, time.Minute)
	c.Issuer = strings.TrimSuffix(c.Issuer, "/")
	c.Clients = slices.Clone(c.Clients)
	for i := range c.Clients {
		if c.Clients[i].Name == "" {
			c.Clients[i].Name = c.Clients[i].ID
		}
	}
	return c
}

// Validate names the first bad key, relative to oidc:.
func (c Config) Validate() error {
	bad := func(key, f string, a ...any) error {
		return fmt.Errorf("%w: oidc.%s: %s", ErrConfig, key, fmt.Sprintf(f, a...))
	}
	c = c.WithDefaults()
	u, err := url.Parse(c.Issuer)
	switch {
	case c.Issuer == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "":
		return bad("issuer", "must be an absolute http(s) URL without query, got %q", c.Issuer)
	case c.App == "":
		return bad("app", "is required")
	case len(c.Clients) == 0:
		return bad("clients", "at least one client is required")
	case c.RefreshTokenTTL < 0 || c.RefreshTokenTTL > 720*time.Hour:
		return bad("refresh_token_ttl", "must be 0 to 720h")
	case c.CodeTTL > 10*time.Minute:
		return bad("code_ttl", "at most 10m")
	case c.ChallengeTTL > c.LoginTTL:
		return bad("challenge_ttl", "must not exceed login_ttl")
	case c.KeyRotation < c.IDTokenTTL:
		return bad("key_rotation", "must be at least id_token_ttl")
	}
	seen := map[string]bool{}
	for i, cl := range c.Clients {
		k := fmt.Sprintf("clients[%d]", i)
		switch {
		case !validClientID.MatchString(cl.ID):
			return bad(k+".client_id", "want 1-64 of A-Z a-z 0-9 _ . -, got %q", cl.ID)
		case seen[cl.ID]:
			return bad(k+".client_id", "%q listed twice", cl.ID)
		case len(cl.Secret) < 16:
			return bad(k+".client_secret", "at least 16 characters")
		case len(cl.RedirectURIs) == 0:
			return bad(k+".redirect_uris", "at least one")
		case cl.PINMaxAge < 0:
			return bad(k+".pin_max_age", "must not be negative")
		}
		for j, ru := range cl.RedirectURIs {
			p, err := url.Parse(ru)
			if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || p.Fragment != "" {
				return bad(fmt.Sprintf("%s.redirect_uris[%d]", k, j), "must be an absolute http(s) URL without fragment, got %q", ru)
			}
		}
		seen[cl.ID] = true
	}
	return nil
}

func (c Config) client(id string) (Client, bool) {
	for _, cl := range c.Clients {
		if cl.ID == id {
			return cl, true
		}
	}
	return Client{}, false
}

// Deps are what the provider needs from the hub.
type Deps struct {
	// Keys is the wxhub_oidc_keys bucket, Store the wxhub_oidc bucket and
	// Challenges the wxhub_auth bucket (scan-to-login challenges). Required.
	Keys, Store, Challenges jetstream.KeyValue
	// Login is WeCom OAuth2 for Config.App (its TokenSource is the gateway's). Required.
	Login oauth.Login
	// PIN is the step-up PIN store; required when a client requires the PIN.
	PIN *pin.Store
	// Claims adds userinfo claims for a user (name, department from the
	// directory); nil: only sub.
	Claims func(ctx context.Context, user string) (map[string]any, error)
	// Now is the clock (tests). Default time.Now.
	Now    func() time.Time
	Logger *zap.Logger
}

// Provider is the OIDC provider. It is an http.Handler for
// /.well-known/openid-configuration and /oidc/...; safe for concurrent use,
// and any number of replicas may serve the same buckets.
type Provider struct {
	cfg  Config
	d    Deps
	log  *zap.Logger
	now  func() time.Time
	keys *keyRing
	mux  *http.ServeMux
}

// New checks cfg and returns the provider. Call EnsureKey (or Run) before serving.
func New(cfg Config, d Deps) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if d.Keys == nil || d.Store == nil || d.Challenges == nil {
		return nil, errors.New("oidc: Deps.Keys, Store and Challenges are required")
	}
	if d.Login.Token == nil || d.Login.Client == nil {
		return nil, errors.New("oidc: Deps.Login needs Token and Client")
	}
	for i, cl := range cfg.Clients {
		if cl.RequirePIN && d.PIN == nil {
			return nil, fmt.Errorf("%w: oidc.clients[%d].require_pin: the PIN store is not configured", ErrConfig, i)
		}
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	p := &Provider{cfg: cfg, d: d, log: d.Logger.Named("oidc"), now: d.Now}
	p.keys = &keyRing{kv: d.Keys, cfg: cfg, now: d.Now, log: p.log}
	m := http.NewServeMux()
	m.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	m.HandleFunc("GET /oidc/jwks", p.jwks)
	m.HandleFunc("GET /oidc/authorize", p.authorize)
	m.HandleFunc("GET /oidc/login", p.loginPage)
	m.HandleFunc("GET /oidc/login/status", p.loginStatus)
	m.HandleFunc("GET /oidc/login/wecom", p.loginWeCom)
	m.HandleFunc("GET /oidc/login/wecom-web", p.loginWeComWeb)
	m.HandleFunc("GET /oidc/callback", p.wecomCallback)
	m.HandleFunc("GET /oidc/pin", p.pinPage)
	m.HandleFunc("POST /oidc/pin", p.pinSubmit)
	m.HandleFunc("POST /oidc/token", p.token)
	m.HandleFunc("GET /oidc/userinfo", p.userinfo)
	m.HandleFunc("POST /oidc/userinfo", p.userinfo)
	p.mux = m
	return p, nil
}

// ServeHTTP serves the provider's endpoints.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.mux.ServeHTTP(w, r) }

// EnsureKey creates the first signing key when there is none (several
// replicas starting at once create one between them).
func (p *Provider) EnsureKey(ctx context.Context) error {
	for range 50 {
		if _, err := p.keys.signer(ctx); err == nil {
			return nil
		}
		if _, err := p.keys.rotate(ctx, -1); err != nil {
			return err
		}
		if _, err := p.keys.load(ctx, true); err != nil {
			return err
		}
		if _, err := p.keys.signer(ctx); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond) // another replica holds the lock and is creating it
	}
	return errors.New("oidc: no signing key after 5 s")
}

// Rotate adds a new signing key now; it signs after key_propagation. The
// previous keys stay published until the tokens they signed have expired.
func (p *Provider) Rotate(ctx context.Context) error {
	_, err := p.keys.rotate(ctx, 0)
	return err
}

// Run keeps the keys: the first at once, a new one every key_rotation,
// retired ones removed. It returns when ctx ends.
func (p *Provider) Run(ctx context.Context) error {
	if err := p.EnsureKey(ctx); err != nil {
		return err
	}
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := p.keys.rotate(ctx, p.cfg.KeyRotation); err != nil {
				p.log.Warn("key rotation failed", zap.Error(err))
			}
		}
	}
}

func (p *Provider) url(path string) string { return p.cfg.Issuer + path }

func (p *Provider) discovery(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                p.cfg.Issuer,
		"authorization_endpoint":                p.url("/oidc/authorize"),
		"token_endpoint":                        p.url("/oidc/token"),
		"userinfo_endpoint":                     p.url("/oidc/userinfo"),
		"jwks_uri":                              p.url("/oidc/jwks"),
		"response_types_supported":              []string{"code"},
		"response_modes_supported":              []string{"query"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "profile", "offline_access"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"code_challenge_methods_supported":      []string{"S256"},
		"acr_values_supported":                  []string{acrWeCom, acrPIN},
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "name"},
	})
}

func (p *Provider) jwks(w http.ResponseWriter, r *http.Request) {
	set, err := p.keys.public(r.Context())
	if err != nil {
		p.log.Warn("jwks unavailable", zap.Error(err))
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=60")
	writeJSON(w, http.StatusOK, set)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// hashKey is the KV key of a secret (code, token): only its hash is stored.
func hashKey(prefix, secret string) string {
	s := sha256.Sum256([]byte(secret))
	return prefix + "." + hex.EncodeToString(s[:])
}
