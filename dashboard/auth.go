package dashboard

import (
	"html/template"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
)

var loginTmpl = template.Must(template.ParseFS(webFS, "web/login.html"))

// loginView is the login page: the token form and the WeCom button, or, with
// QR set, the QR code of a WeCom login in progress.
type loginView struct {
	Error string
	Token bool // the token form (users with tokens exist)
	WeCom bool // the "Log in with WeCom" button
	// QR is the server-drawn SVG of QRText; Status says what to do; Expires
	// is when the code stops working (RFC 3339).
	QR      template.HTML
	QRText  string
	Status  string
	Expires string
}

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, err := d.session(r); err == nil {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	d.renderLogin(w, http.StatusOK, loginView{})
}

func (d *Dashboard) renderLogin(w http.ResponseWriter, code int, v loginView) {
	v.Token = len(d.userList) > 0
	v.WeCom = d.wecomEnabled()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if err := loginTmpl.Execute(w, v); err != nil {
		d.log.Debug("login page", zap.Error(err))
	}
}

// sameOrigin rejects a cross-site form post (login CSRF: logging the victim into
// the attacker's session). Browsers send Origin on POST; Sec-Fetch-Site where
// supported. A request with neither (curl, scripts) has no ambient cookie to abuse.
func sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" {
		return s == "same-origin" || s == "none"
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		d.renderLogin(w, http.StatusForbidden, loginView{Error: "Cross-site login refused."})
		return
	}
	lim := d.allowLogin(r)
	now := d.now()
	if lim.TokensAt(now) < 1 {
		d.renderLogin(w, http.StatusTooManyRequests, loginView{Error: "Too many failed attempts; wait a minute."})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		d.renderLogin(w, http.StatusBadRequest, loginView{Error: "Bad form."})
		return
	}
	u, ok := findUser(d.userList, r.PostForm.Get("token"))
	if !ok {
		lim.AllowN(now, 1)
		d.log.Warn("dashboard login failed", zap.String("remote", r.RemoteAddr))
		d.renderLogin(w, http.StatusUnauthorized, loginView{Error: "Wrong token."})
		return
	}
	d.setSession(w, u)
	d.log.Info("dashboard login", zap.String("user", u.Name), zap.String("role", u.Role))
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

// setSession sets the session cookie of a user who just logged in.
func (d *Dashboard) setSession(w http.ResponseWriter, u User) {
	value, s := d.sess.issue(u)
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    value,
		Path:     Prefix,
		Expires:  time.Unix(s.Expires, 0),
		MaxAge:   int(d.cfg.SessionTTL.Seconds()),
		HttpOnly: true,
		Secure:   d.cfg.SecureCookie,
		SameSite: http.SameSiteStrictMode,
	})
}

// logout revokes the session everywhere (a stolen copy of the cookie stops
// working on every replica too), then clears the cookie.
func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request, s session) {
	kv, err := d.bus.KV(r.Context(), bus.BucketSessions)
	if err == nil {
		err = bus.RevokeSession(r.Context(), kv, s.Nonce, time.Unix(s.Expires, 0), d.now())
	}
	if err != nil {
		d.log.Warn("dashboard logout: revoke", zap.String("user", s.User), zap.Error(err))
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "could not revoke the session, retry"})
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: Prefix, MaxAge: -1,
		HttpOnly: true, Secure: d.cfg.SecureCookie, SameSite: http.SameSiteStrictMode,
	})
	d.log.Info("dashboard logout", zap.String("user", s.User))
	writeJSON(w, http.StatusOK, map[string]string{"status": "logged out"})
}

type meView struct {
	User    string    `json:"user"`
	Role    string    `json:"role"`
	CSRF    string    `json:"csrf"`
	Expires time.Time `json:"expires"`
	Refresh float64   `json:"refresh_seconds"`
}

func (d *Dashboard) me(w http.ResponseWriter, _ *http.Request, s session) {
	writeJSON(w, http.StatusOK, meView{
		User: s.User, Role: s.Role, CSRF: d.sess.csrf(s),
		Expires: time.Unix(s.Expires, 0).UTC(), Refresh: d.cfg.Refresh.Seconds(),
	})
}
