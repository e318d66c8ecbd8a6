package dashboard

// Log in with WeCom: the dashboard creates a scan-to-login challenge for itself
// in the wxhub_auth bucket (the record the gateway's API writes, so the
// scanlogin connector binds the scanner and sends the confirm card unchanged),
// shows its QR code, and the page polls until the member confirmed. The
// confirmed userid is then mapped to a role by Config.WeComUsers. No assertion
// is involved: the dashboard reads the bucket itself.
//
// The challenge id travels in a signed HttpOnly cookie, never in a URL the
// page polls: the id is printed in the QR code, and whoever photographs the
// screen must not be able to finish the login from another browser.

import (
	"context"
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom/qrsvg"
)

const (
	// ChallengeClient is the client (the audience) of the dashboard's login
	// challenges; the confirm card names ChallengeTitle.
	ChallengeClient = "dashboard"
	ChallengeTitle  = "wxhub 运维看板"
	// challengeKey is the Key of the dashboard's challenges. It is not a valid
	// api.keys name, so no API client can redeem them through the gateway.
	challengeKey = "@dashboard"
	// DefaultChallengeTTL matches auth.challenge_ttl's default.
	DefaultChallengeTTL = 2 * time.Minute
	// wecomCookie holds the challenge id of this browser's WeCom login.
	wecomCookie = "wxhub_dash_wecom"
	wecomPath   = Prefix + "login/wecom"
	casRetries  = 5
)

// WeCom login outcomes reported by GET /dashboard/login/wecom/status, beside
// the challenge states pending, scanned, denied and expired.
const (
	wecomOK      = "ok"      // logged in: go to Redirect
	wecomRefused = "refused" // confirmed by a member who is not in wecom_users
)

// errWeComUnavailable: the bucket could not be read or written.
var errWeComUnavailable = errors.New("dashboard: WeCom login unavailable")

// WithChallengeTTL sets how long the login QR code can be scanned and
// confirmed. Default DefaultChallengeTTL; the hub passes auth.challenge_ttl.
// It must not exceed the wxhub_auth bucket's TTL (nats.auth_ttl).
func WithChallengeTTL(ttl time.Duration) Option {
	return func(d *Dashboard) {
		if ttl > 0 {
			d.challengeTTL = ttl
		}
	}
}

// wecomLogin is the state of WeCom login; zero when no WeComUsers are configured.
type wecomLogin struct {
	users map[string]User // lower-case userid -> session user

	kvMu sync.Mutex
	kv   jetstream.KeyValue

	startMu  sync.Mutex
	starters map[string]*rate.Limiter // QR codes made per client address
}

func (d *Dashboard) wecomEnabled() bool { return len(d.wecom.users) > 0 }

func (d *Dashboard) initWeCom() {
	d.wecom.users = map[string]User{}
	d.wecom.starters = map[string]*rate.Limiter{}
	for i, u := range d.cfg.wecomUsers() {
		d.wecom.users[strings.ToLower(d.cfg.WeComUsers[i].UserID)] = u
		d.users[u.Name] = u
	}
}

func (d *Dashboard) authKV(ctx context.Context) (jetstream.KeyValue, error) {
	d.wecom.kvMu.Lock()
	defer d.wecom.kvMu.Unlock()
	if d.wecom.kv == nil {
		kv, err := d.bus.KV(ctx, bus.BucketAuth)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errWeComUnavailable, err)
		}
		d.wecom.kv = kv
	}
	return d.wecom.kv, nil
}

// allowStart limits the QR codes one address may create: 10 a minute, burst 5.
// Creating one costs a KV write, and a page only needs a new one every TTL.
func (d *Dashboard) allowStart(r *http.Request) bool {
	host := clientHost(r)
	d.wecom.startMu.Lock()
	defer d.wecom.startMu.Unlock()
	l, ok := d.wecom.starters[host]
	if !ok {
		if len(d.wecom.starters) > 10000 {
			clear(d.wecom.starters)
		}
		l = rate.NewLimiter(rate.Every(6*time.Second), 5)
		d.wecom.starters[host] = l
	}
	return l.AllowN(d.now(), 1)
}

// challengeCookie signs id for this browser's wecomCookie.
func (d *Dashboard) challengeCookie(id string, maxAge time.Duration) *http.Cookie {
	value := ""
	if id != "" {
		value = id + "." + base64.RawURLEncoding.EncodeToString(d.sess.mac("wecom-challenge", id)[:16])
	}
	c := &http.Cookie{
		Name: wecomCookie, Value: value, Path: wecomPath, MaxAge: int(maxAge.Seconds()),
		HttpOnly: true, Secure: d.cfg.SecureCookie, SameSite: http.SameSiteStrictMode,
	}
	if id == "" {
		c.MaxAge = -1
	}
	return c
}

// challengeID returns the verified challenge id of the request's cookie.
func (d *Dashboard) challengeID(r *http.Request) (string, bool) {
	c, err := r.Cookie(wecomCookie)
	if err != nil {
		return "", false
	}
	id, sig, ok := strings.Cut(c.Value, ".")
	if !ok || !schemas.ValidAuthChallengeID(id) {
		return "", false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	return id, err == nil && hmac.Equal(got, d.sess.mac("wecom-challenge", id)[:16])
}

// wecomStart is POST /dashboard/login/wecom: a new challenge for this browser.
func (d *Dashboard) wecomStart(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		d.renderLogin(w, http.StatusForbidden, loginView{Error: "Cross-site login refused."})
		return
	}
	if d.allowLogin(r).TokensAt(d.now()) < 1 {
		d.renderLogin(w, http.StatusTooManyRequests, loginView{Error: "Too many failed attempts; wait a minute."})
		return
	}
	if !d.allowStart(r) {
		d.renderLogin(w, http.StatusTooManyRequests, loginView{Error: "Too many QR codes from this address; wait a minute."})
		return
	}
	ch := schemas.NewAuthChallenge(d.cfg.WeComApp, ChallengeClient, ChallengeTitle, challengeKey, d.now(), d.challengeTTL)
	kv, err := d.authKV(r.Context())
	if err == nil {
		data, _ := json.Marshal(ch)
		_, err = kv.Create(r.Context(), ch.ID, data)
	}
	if err != nil {
		d.log.Warn("dashboard WeCom login: challenge not stored", zap.Error(err))
		d.renderLogin(w, http.StatusServiceUnavailable, loginView{Error: "WeCom login is unavailable right now; try again or use a token."})
		return
	}
	d.log.Info("dashboard WeCom login started", zap.String("challenge", ch.ID), zap.String("app", ch.App))
	http.SetCookie(w, d.challengeCookie(ch.ID, d.challengeTTL+schemas.AuthFetchGrace))
	http.Redirect(w, r, wecomPath, http.StatusSeeOther)
}

// wecomPage is GET /dashboard/login/wecom: the QR code of this browser's
// challenge; login.js polls the status.
func (d *Dashboard) wecomPage(w http.ResponseWriter, r *http.Request) {
	if _, err := d.session(r); err == nil {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	id, ok := d.challengeID(r)
	if !ok {
		http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
		return
	}
	ch, _, err := d.loadChallenge(r.Context(), id)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		d.log.Warn("dashboard WeCom login: challenge read failed", zap.Error(err))
		d.renderLogin(w, http.StatusServiceUnavailable, loginView{Error: "WeCom login is unavailable right now; try again or use a token."})
		return
	}
	st := ch.Reported(d.now())
	if err != nil {
		st = schemas.AuthExpired // removed by the bucket's TTL
	}
	if st != schemas.AuthPending && st != schemas.AuthScanned && st != schemas.AuthConfirmed {
		// Over (expired, denied, used): start afresh from the form.
		http.SetCookie(w, d.challengeCookie("", 0))
		d.renderLogin(w, http.StatusOK, loginView{Error: wecomMessage(st, "")})
		return
	}
	qr, err := qrsvg.Render(schemas.AuthQRPrefix+id, 232, "WeCom login QR code")
	if err != nil {
		d.renderLogin(w, http.StatusInternalServerError, loginView{Error: "Cannot draw the QR code."})
		return
	}
	d.renderLogin(w, http.StatusOK, loginView{
		QR: template.HTML(qr), QRText: schemas.AuthQRPrefix + id,
		Status: wecomMessage(st, ""), Expires: ch.ExpiresAt.UTC().Format(time.RFC3339),
	})
}

// wecomState is the answer of GET /dashboard/login/wecom/status.
type wecomState struct {
	Status   string `json:"status"`
	Message  string `json:"message"`
	Redirect string `json:"redirect,omitempty"`
}

// wecomStatus is GET /dashboard/login/wecom/status. Once the member confirmed,
// it consumes the challenge (compare-and-set, so it logs in once), maps the
// userid to a role and sets the session cookie.
func (d *Dashboard) wecomStatus(w http.ResponseWriter, r *http.Request) {
	st, err := d.wecomPoll(w, r)
	if err != nil {
		d.log.Warn("dashboard WeCom login: status failed", zap.Error(err))
		writeJSON(w, http.StatusServiceUnavailable, wecomState{Status: "error", Message: "WeCom login is unavailable right now; retrying."})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (d *Dashboard) wecomPoll(w http.ResponseWriter, r *http.Request) (wecomState, error) {
	id, ok := d.challengeID(r)
	if !ok {
		return wecomState{Status: schemas.AuthExpired, Message: wecomMessage(schemas.AuthExpired, "")}, nil
	}
	ctx := r.Context()
	kv, err := d.authKV(ctx)
	if err != nil {
		return wecomState{}, err
	}
	for range casRetries {
		ch, rev, err := d.loadChallenge(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			http.SetCookie(w, d.challengeCookie("", 0))
			return wecomState{Status: schemas.AuthExpired, Message: wecomMessage(schemas.AuthExpired, "")}, nil
		}
		if err != nil {
			return wecomState{}, err
		}
		now := d.now()
		st := ch.Reported(now)
		switch st {
		case schemas.AuthPending, schemas.AuthScanned:
			return wecomState{Status: st, Message: wecomMessage(st, "")}, nil
		case schemas.AuthConfirmed:
		case schemas.AuthConsumed: // by another tab of this browser: that one is logged in
			http.SetCookie(w, d.challengeCookie("", 0))
			return wecomState{Status: schemas.AuthExpired, Message: wecomMessage(st, "")}, nil
		default:
			http.SetCookie(w, d.challengeCookie("", 0))
			return wecomState{Status: st, Message: wecomMessage(st, "")}, nil
		}
		t := now.UTC()
		consumed := ch
		consumed.Status, consumed.ConsumedAt = schemas.AuthConsumed, &t
		data, _ := json.Marshal(consumed)
		if _, err := kv.Update(ctx, id, data, rev); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue // a concurrent poll won: read again
			}
			return wecomState{}, fmt.Errorf("%w: consume challenge: %w", errWeComUnavailable, err)
		}
		http.SetCookie(w, d.challengeCookie("", 0))
		u, known := d.wecom.users[strings.ToLower(ch.User)]
		if !known {
			d.allowLogin(r).AllowN(now, 1) // counts as a failed login
			d.log.Warn("dashboard WeCom login refused: userid not in dashboard.wecom_users",
				zap.String("userid", ch.User), zap.String("remote", r.RemoteAddr))
			return wecomState{Status: wecomRefused, Message: wecomMessage(wecomRefused, ch.User)}, nil
		}
		d.setSession(w, u)
		d.log.Info("dashboard login", zap.String("user", u.Name), zap.String("role", u.Role), zap.String("method", schemas.AuthMethodScan))
		return wecomState{Status: wecomOK, Message: "Logged in.", Redirect: Prefix}, nil
	}
	return wecomState{}, fmt.Errorf("%w: challenge %s: too many concurrent updates", errWeComUnavailable, id)
}

// loadChallenge reads a challenge of the dashboard; jetstream.ErrKeyNotFound
// when it is gone or not the dashboard's.
func (d *Dashboard) loadChallenge(ctx context.Context, id string) (schemas.AuthChallenge, uint64, error) {
	var ch schemas.AuthChallenge
	kv, err := d.authKV(ctx)
	if err != nil {
		return ch, 0, err
	}
	e, err := kv.Get(ctx, id)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return ch, 0, err
		}
		return ch, 0, fmt.Errorf("%w: read challenge: %w", errWeComUnavailable, err)
	}
	if json.Unmarshal(e.Value(), &ch) != nil || ch.Key != challengeKey || ch.Client != ChallengeClient {
		return ch, 0, jetstream.ErrKeyNotFound
	}
	return ch, e.Revision(), nil
}

// wecomMessage is what the login page says about a state.
func wecomMessage(status, user string) string {
	switch status {
	case schemas.AuthPending:
		return "Scan this code with the WeCom app (the scan button of its menu)."
	case schemas.AuthScanned:
		return "Scanned. Confirm on the card WeCom sent you (确认登录)."
	case schemas.AuthConfirmed:
		return "Confirmed; logging in…"
	case schemas.AuthDenied:
		return "Login cancelled in WeCom (取消)."
	case schemas.AuthConsumed:
		return "This QR code was already used. Get a new one."
	case wecomRefused:
		return fmt.Sprintf("WeCom user %q may not use this dashboard: ask an admin to add it to dashboard.wecom_users.", user)
	}
	return "The QR code expired. Get a new one."
}
