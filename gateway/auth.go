package gateway

// Scan-to-login and WeCom OAuth2 login: the gateway creates challenges, hands
// out each confirmed challenge's signed assertion exactly once, publishes the
// verification key, and answers WeCom's OAuth redirect. The scanlogin connector
// binds the scanning user; both meet only in the wxhub_auth KV bucket
// (schemas.AuthChallenge). See docs/identity.md.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom"
)

// Sentinel errors of the login flows.
var (
	ErrChallengeNotFound = errors.New("gateway: no such login challenge")
	ErrChallengeUsed     = errors.New("gateway: login challenge already used")
	ErrChallengeExpired  = errors.New("gateway: login challenge expired")
	ErrNotMember         = errors.New("gateway: the OAuth user is not a member of the corp")
	ErrTokenUnavailable  = errors.New("gateway: no access token for the app")
)

const (
	// casRetries bounds the read-modify-write loops on a challenge.
	casRetries = 5
	// tokenEarly matches the sender: a token this close to its end is not used.
	tokenEarly = 5 * time.Minute
)

var validClient = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// signer holds the assertion key and its published form.
type signer struct {
	priv ed25519.PrivateKey
	kid  string
	jwks []byte
}

func newSigner(cfg AuthConfig, log *zap.Logger) (*signer, error) {
	seed, err := cfg.SigningSeed()
	if err != nil {
		return nil, fmt.Errorf("gateway: auth.signing_key: %w", err)
	}
	if seed == nil {
		seed = make([]byte, ed25519.SeedSize)
		rand.Read(seed)
		log.Warn("auth.signing_key is not set: assertions are signed with a random key of this process; set it when several gateways run")
	}
	priv := ed25519.NewKeyFromSeed(seed)
	x := base64.RawURLEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))
	// RFC 7638 thumbprint: the required members in lexicographic order, no spaces.
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + x + `"}`))
	kid := base64.RawURLEncoding.EncodeToString(sum[:])
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig",
	}}})
	return &signer{priv: priv, kid: kid, jwks: jwks}, nil
}

func (s *signer) sign(c schemas.AssertionClaims) string {
	header, _ := json.Marshal(map[string]string{"alg": "EdDSA", "typ": "JWT", "kid": s.kid})
	payload, _ := json.Marshal(c)
	signing := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	return signing + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(s.priv, []byte(signing)))
}

func (g *Gateway) assertion(ch schemas.AuthChallenge, now time.Time) string {
	ttl := g.cfg.Auth.AssertionTTL
	return g.signer.sign(schemas.AssertionClaims{
		Issuer: g.cfg.Auth.Issuer, Subject: ch.User, Audience: ch.Client, Corp: g.corpOf(ch.App),
		App: ch.App, Challenge: ch.ID, Methods: []string{ch.Method},
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expires: now.Add(ttl).Unix(), ID: randomHex(16),
	})
}

func (g *Gateway) authRoutes() {
	g.mux.HandleFunc("POST /api/v1/auth/challenges", g.createChallenge)
	g.mux.HandleFunc("GET /api/v1/auth/challenges/{id}", g.getChallenge)
	g.mux.HandleFunc("GET /api/v1/auth/keys", g.authKeys)
	g.mux.HandleFunc("GET /api/v1/auth/oauth/callback", g.oauthCallback)
}

// challengeCreated is the answer to POST /api/v1/auth/challenges.
type challengeCreated struct {
	ID        string    `json:"id"`
	Status    string    `json:"status"`
	QRText    string    `json:"qr_text"`
	ExpiresAt time.Time `json:"expires_at"`
	Poll      string    `json:"poll"`
	// OAuthURL and SSOURL start the OAuth flow (only when "return" was given):
	// inside the WeCom app, and WeCom's web QR login for desktop browsers.
	OAuthURL string `json:"oauth_url,omitempty"`
	SSOURL   string `json:"sso_url,omitempty"`
}

// challengeState is the answer to GET /api/v1/auth/challenges/{id}.
type challengeState struct {
	ID        string    `json:"id"`
	Status    string    `json:"status"`
	User      string    `json:"user,omitempty"`
	Assertion string    `json:"assertion,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="wxhub"`)
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or unknown API key"})
}

// createChallenge is POST /api/v1/auth/challenges {"app", "client", "return"}.
func (g *Gateway) createChallenge(w http.ResponseWriter, r *http.Request) {
	key, ok := g.authenticate(r)
	if !ok {
		unauthorized(w)
		return
	}
	var req struct {
		App    string `json:"app"`
		Client string `json:"client"`
		Return string `json:"return"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writePushError(w, badField("", "body must be a JSON object with app, client and return: %v", err))
		return
	}
	ch, err := g.newChallenge(key, req.App, req.Client, req.Return)
	if err != nil {
		writePushError(w, err)
		return
	}
	kv, err := g.bus.KV(r.Context(), bus.BucketAuth)
	if err == nil {
		data, _ := json.Marshal(ch)
		_, err = kv.Create(r.Context(), ch.ID, data)
	}
	if err != nil {
		g.log.Warn("login challenge not stored", zap.Error(err))
		writePushError(w, err)
		return
	}
	g.log.Info("login challenge created", zap.String("id", ch.ID), zap.String("client", ch.Client), zap.String("app", ch.App))
	out := challengeCreated{
		ID: ch.ID, Status: ch.Status, QRText: schemas.AuthQRPrefix + ch.ID, ExpiresAt: ch.ExpiresAt,
		Poll: "/api/v1/auth/challenges/" + ch.ID,
	}
	if ch.Return != "" {
		out.OAuthURL, out.SSOURL = g.oauthURLs(r, ch)
	}
	w.Header().Set("Location", out.Poll)
	writeJSON(w, http.StatusCreated, out)
}

// newChallenge checks a create request against the key's scope and the
// configured clients.
func (g *Gateway) newChallenge(key *APIKey, app, client, ret string) (schemas.AuthChallenge, error) {
	if app == "" {
		return schemas.AuthChallenge{}, badField("app", "is required")
	}
	if _, ok := g.cfg.WeCom.App(app); !ok {
		return schemas.AuthChallenge{}, badField("app", "no WeCom app named %q", app)
	}
	if !keyAllows(key, app) {
		return schemas.AuthChallenge{}, &pushError{status: http.StatusForbidden, field: "app", msg: fmt.Sprintf("API key %q may not use app %q", key.Name, app)}
	}
	if client == "" {
		client = key.Name
	}
	if !validClient.MatchString(client) {
		return schemas.AuthChallenge{}, badField("client", "must be 1-64 of A-Z a-z 0-9 _ . -, got %q", client)
	}
	cc, configured := g.cfg.Auth.Client(client)
	allowed := client == key.Name
	if configured {
		for _, k := range cc.Keys {
			allowed = allowed || k == key.Name
		}
	}
	if !allowed {
		return schemas.AuthChallenge{}, &pushError{status: http.StatusForbidden, field: "client",
			msg: fmt.Sprintf("API key %q may not log users in to client %q (auth.clients[].keys)", key.Name, client)}
	}
	if ret != "" && !cc.AllowsReturn(ret) {
		return schemas.AuthChallenge{}, badField("return", "%q is not under one of auth.clients[%s].redirect_urls", ret, client)
	}
	ch := schemas.NewAuthChallenge(app, client, cc.Title, key.Name, g.now(), g.cfg.Auth.ChallengeTTL)
	ch.Return = ret
	return ch, nil
}

// oauthURLs are WeCom's authorize and web-login addresses that come back to
// our callback with the challenge id as state.
func (g *Gateway) oauthURLs(r *http.Request, ch schemas.AuthChallenge) (string, string) {
	base := strings.TrimSuffix(g.cfg.Auth.PublicURL, "/")
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	redirect := base + "/api/v1/auth/oauth/callback"
	a, _ := g.cfg.WeCom.App(ch.App)
	agent := strconv.FormatInt(a.AgentID, 10)
	// WeCom requires the parameters in this order and the #wechat_redirect fragment.
	oauth := g.cfg.Auth.OAuthAuthorizeURL + "?appid=" + url.QueryEscape(g.cfg.WeCom.CorpOf(a)) +
		"&redirect_uri=" + url.QueryEscape(redirect) + "&response_type=code&scope=snsapi_base&state=" + ch.ID +
		"&agentid=" + agent + "#wechat_redirect"
	sso := g.cfg.Auth.SSOLoginURL + "?login_type=CorpApp&appid=" + url.QueryEscape(g.cfg.WeCom.CorpOf(a)) +
		"&agentid=" + agent + "&redirect_uri=" + url.QueryEscape(redirect) + "&state=" + ch.ID
	return oauth, sso
}

// getChallenge is GET /api/v1/auth/challenges/{id}: the state, and once
// confirmed the assertion, exactly once.
func (g *Gateway) getChallenge(w http.ResponseWriter, r *http.Request) {
	key, ok := g.authenticate(r)
	if !ok {
		unauthorized(w)
		return
	}
	st, err := g.redeem(r.Context(), key, r.PathValue("id"))
	switch {
	case errors.Is(err, ErrChallengeNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such challenge"})
	case err != nil:
		g.log.Warn("login challenge read failed", zap.Error(err))
		writePushError(w, err)
	default:
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, st)
	}
}

func (g *Gateway) redeem(ctx context.Context, key *APIKey, id string) (challengeState, error) {
	kv, err := g.bus.KV(ctx, bus.BucketAuth)
	if err != nil {
		return challengeState{}, err
	}
	for range casRetries {
		ch, rev, err := getChallenge(ctx, kv, id)
		if err != nil {
			return challengeState{}, err
		}
		if ch.Key != key.Name {
			// Another client's challenge is as unknown as a missing one.
			return challengeState{}, ErrChallengeNotFound
		}
		now := g.now()
		st := challengeState{ID: ch.ID, Status: ch.Reported(now), ExpiresAt: ch.ExpiresAt}
		switch st.Status {
		case schemas.AuthConsumed:
			st.User = ch.User
			return st, nil
		case schemas.AuthConfirmed:
		default: // pending, scanned, expired, denied, or a state we do not know: nothing to hand out
			return st, nil
		}
		consumed := ch
		consumed.Status = schemas.AuthConsumed
		t := now.UTC()
		consumed.ConsumedAt = &t
		data, _ := json.Marshal(consumed)
		if _, err := kv.Update(ctx, id, data, rev); err != nil {
			if isRevisionConflict(err) {
				continue // a concurrent poll won: read again, it reports consumed
			}
			return challengeState{}, fmt.Errorf("gateway: consume challenge: %w", err)
		}
		st.User, st.Assertion = ch.User, g.assertion(ch, now)
		g.log.Info("login assertion issued", zap.String("id", ch.ID), zap.String("client", ch.Client),
			zap.String("method", ch.Method))
		return st, nil
	}
	return challengeState{}, fmt.Errorf("gateway: challenge %s: too many concurrent updates", id)
}

func getChallenge(ctx context.Context, kv jetstream.KeyValue, id string) (schemas.AuthChallenge, uint64, error) {
	var ch schemas.AuthChallenge
	if !schemas.ValidAuthChallengeID(id) {
		return ch, 0, ErrChallengeNotFound
	}
	e, err := kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return ch, 0, ErrChallengeNotFound
	}
	if err != nil {
		return ch, 0, fmt.Errorf("gateway: read challenge: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &ch); err != nil {
		return ch, 0, fmt.Errorf("%w: unreadable record: %v", ErrChallengeNotFound, err)
	}
	return ch, e.Revision(), nil
}

func isRevisionConflict(err error) bool {
	// The server answers a stale revision with "wrong last sequence"; nats.go
	// maps it to ErrKeyExists.
	return errors.Is(err, jetstream.ErrKeyExists)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// authKeys is GET /api/v1/auth/keys: the public key as a JWK Set.
func (g *Gateway) authKeys(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(g.signer.jwks)
}

// oauthCallback is GET /api/v1/auth/oauth/callback?code=&state=, where WeCom
// sends the browser back. state is the challenge id; the browser goes on to the
// challenge's return address with wxhub_assertion (or wxhub_error).
func (g *Gateway) oauthCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	kv, err := g.bus.KV(ctx, bus.BucketAuth)
	if err != nil {
		oauthPage(w, http.StatusServiceUnavailable, "登录服务暂不可用，请稍后重试。")
		return
	}
	ch, rev, err := getChallenge(ctx, kv, q.Get("state"))
	if err != nil || ch.Return == "" {
		if err != nil && !errors.Is(err, ErrChallengeNotFound) {
			g.log.Warn("oauth callback: challenge read failed", zap.Error(err))
		}
		oauthPage(w, http.StatusBadRequest, "登录链接无效或已过期，请回到原页面重新登录。")
		return
	}
	fail := func(code string, err error) {
		g.log.Info("oauth login refused", zap.String("id", ch.ID), zap.String("client", ch.Client), zap.String("reason", code), zap.Error(err))
		http.Redirect(w, r, withQuery(ch.Return, map[string]string{"wxhub_error": code, "wxhub_challenge": ch.ID}), http.StatusSeeOther)
	}
	now := g.now()
	switch {
	case ch.Status != schemas.AuthPending:
		fail("already_used", ErrChallengeUsed)
		return
	case ch.Expired(now):
		fail("expired", ErrChallengeExpired)
		return
	case q.Get("code") == "":
		fail("access_denied", errors.New("WeCom sent no code"))
		return
	}
	user, err := g.oauthUser(ctx, ch.App, q.Get("code"))
	if err != nil {
		code := "server_error"
		switch {
		case errors.Is(err, ErrNotMember):
			code = "not_member"
		case wecom.IsPermanent(err):
			code = "invalid_code"
		}
		fail(code, err)
		return
	}
	t := now.UTC()
	ch.Status, ch.User, ch.Method, ch.ConfirmedAt, ch.ConsumedAt = schemas.AuthConsumed, user, schemas.AuthMethodOAuth, &t, &t
	data, _ := json.Marshal(ch)
	if _, err := kv.Update(ctx, ch.ID, data, rev); err != nil {
		if isRevisionConflict(err) {
			fail("already_used", ErrChallengeUsed)
		} else {
			fail("server_error", err)
		}
		return
	}
	g.log.Info("login assertion issued", zap.String("id", ch.ID), zap.String("client", ch.Client), zap.String("method", ch.Method))
	http.Redirect(w, r, withQuery(ch.Return, map[string]string{"wxhub_assertion": g.assertion(ch, now), "wxhub_challenge": ch.ID}), http.StatusSeeOther)
}

func withQuery(u string, add map[string]string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return u // checked when the challenge was created
	}
	q := pu.Query()
	for k, v := range add {
		q.Set(k, v)
	}
	pu.RawQuery = q.Encode()
	return pu.String()
}

func oauthPage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><meta charset=utf-8><title>wxhub</title><p>%s</p>\n", html.EscapeString(msg))
}

// oauthUser exchanges an OAuth code for the member's userid. A token rejected
// as expired is fetched anew once.
func (g *Gateway) oauthUser(ctx context.Context, appName, code string) (string, error) {
	app, ok := g.cfg.WeCom.App(appName)
	if !ok {
		return "", fmt.Errorf("%w: app %q is no longer configured", ErrTokenUnavailable, appName)
	}
	tok, err := g.appToken(ctx, app, false)
	if err != nil {
		return "", err
	}
	u, err := g.wecom.GetUserInfo(ctx, tok, code)
	if wecom.IsTokenExpired(err) {
		if tok, err = g.appToken(ctx, app, true); err != nil {
			return "", err
		}
		u, err = g.wecom.GetUserInfo(ctx, tok, code)
	}
	if err != nil {
		return "", fmt.Errorf("gateway: auth/getuserinfo: %w", err)
	}
	if u.UserID == "" {
		return "", ErrNotMember // an openid: someone outside the corp
	}
	return u.UserID, nil
}

// appToken returns the app's access token from wxhub_tokens, or from gettoken
// when the shared one is missing, expiring, stale or fresh is set.
func (g *Gateway) appToken(ctx context.Context, app wecom.AppConfig, fresh bool) (string, error) {
	return g.sharedToken(ctx, bus.TokenKey(g.cfg.WeCom.CorpOf(app), app.AgentID), app.Name, fresh,
		func(ctx context.Context) (string, time.Duration, error) {
			return g.wecom.GetToken(ctx, g.cfg.WeCom.CorpOf(app), app.Secret)
		})
}

// accountToken returns an Official Account's access token from wxhub_tokens
// (the sender's), else from WeChat: as appToken.
func (g *Gateway) accountToken(ctx context.Context, acct wecom.AccountConfig, fresh bool) (string, error) {
	return g.sharedToken(ctx, bus.MPTokenKey(acct.AppID), acct.Name, fresh,
		func(ctx context.Context) (string, time.Duration, error) {
			return g.mpClient.GetToken(ctx, acct.AppID, acct.Secret)
		})
}

// sharedToken is the token under key in wxhub_tokens, or one from get (stored
// there) when missing, expiring, stale or fresh is set.
func (g *Gateway) sharedToken(ctx context.Context, key, name string, fresh bool, get func(context.Context) (string, time.Duration, error)) (string, error) {
	kv, err := g.bus.KV(ctx, bus.BucketTokens)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrTokenUnavailable, err)
	}
	app := struct{ Name string }{name}
	now := g.now()
	var rec bus.TokenRecord
	var rev uint64
	if e, err := kv.Get(ctx, key); err == nil {
		rev = e.Revision()
		if json.Unmarshal(e.Value(), &rec) != nil {
			rec = bus.TokenRecord{}
		}
	}
	switch {
	case !fresh && rec.Valid(now, tokenEarly):
		return rec.Token, nil
	case rec.Error != "" && now.Before(rec.ErrorUntil):
		// The sender saw the secret refused: asking again gets the IP blocked.
		return "", fmt.Errorf("%w: %s: %s", ErrTokenUnavailable, app.Name, rec.Error)
	}
	tok, expiresIn, err := get(ctx)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrTokenUnavailable, app.Name, err)
	}
	if rec.RefreshBy == "" || !now.Before(rec.RefreshUntil) {
		data, _ := json.Marshal(bus.TokenRecord{Token: tok, ExpiresAt: now.Add(expiresIn)})
		if rev == 0 {
			_, err = kv.Create(ctx, key, data)
		} else {
			_, err = kv.Update(ctx, key, data, rev)
		}
		if err != nil {
			// Someone else wrote meanwhile; the token we hold is valid for us anyway.
			g.log.Debug("token store update lost", zap.String("app", app.Name), zap.Error(err))
		}
	}
	return tok, nil
}
