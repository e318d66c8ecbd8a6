package gateway

import (
	"bytes"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/wxhub/wxhub/wecom"
)

// The pass-through: a legacy system that calls other WeCom APIs (contacts,
// approvals, calendars) points its WeCom base URL at the hub, as for
// message/send, and its calls go to WeCom with the hub's shared token, under
// a per-API cap and an audit log line each; it never holds a secret.

// HeaderApp picks the app whose token a pass-through call uses; default the
// key's first app.
const HeaderApp = "Wxhub-App"

// WeCom's answers of the pass-through's own refusals.
const (
	codeAPIForbidden = 48002 // the API is not in the key's allow-list
	codeFreqLimit    = 45009 // over the per-API cap
)

var passThroughPath = regexp.MustCompile(`^[a-z0-9_]+(/[a-z0-9_]+)*(/\*)?$`)

func validPassThrough(api string) bool { return api == "*" || passThroughPath.MatchString(api) }

// allowsAPI reports whether the key's allow-list holds api ("department/*"
// allows "department/list" and "department/simplelist").
func allowsAPI(k *APIKey, api string) bool {
	for _, a := range k.PassThrough {
		if a == "*" || a == api || (strings.HasSuffix(a, "/*") && strings.HasPrefix(api, strings.TrimSuffix(a, "*"))) {
			return true
		}
	}
	return false
}

// apiCaps holds one limiter per WeCom API: burst and rate together never let
// more than perMinute calls through in any 60 s.
type apiCaps struct {
	perMinute int
	mu        sync.Mutex
	lim       map[string]*rate.Limiter
}

func (c *apiCaps) allow(api string, now time.Time) bool {
	if c.perMinute < 0 {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.lim[api]
	if !ok {
		burst := max(1, c.perMinute/10)
		l = rate.NewLimiter(rate.Limit(float64(c.perMinute-burst)/60), burst)
		c.lim[api] = l
	}
	return l.AllowN(now, 1)
}

func (g *Gateway) passThrough(w http.ResponseWriter, r *http.Request) {
	api := r.PathValue("api")
	key, ok := g.dropInCaller(w, r)
	if !ok {
		return
	}
	if !passThroughPath.MatchString(api) || !allowsAPI(key, api) {
		g.audit(key, "", api, r.Method, codeAPIForbidden, 0)
		writeJSON(w, http.StatusOK, wecomError(codeAPIForbidden, "api forbidden: "+api+" is not in the passthrough list of API key "+key.Name))
		return
	}
	app, ok := g.passThroughApp(key, r.Header.Get(HeaderApp))
	if !ok {
		writeJSON(w, http.StatusOK, wecomError(60011, "no privilege to access this app: "+r.Header.Get(HeaderApp)))
		return
	}
	if !g.caps.allow(api, g.now()) {
		g.audit(key, app.Name, api, r.Method, codeFreqLimit, 0)
		writeJSON(w, http.StatusOK, wecomError(codeFreqLimit, "api freq out of limit (the hub's cap for "+api+")"))
		return
	}
	var body []byte
	if r.Method == http.MethodPost {
		var err error
		if body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxBodyBytes)); err != nil {
			writeJSON(w, http.StatusOK, wecomError(44004, "request body too large"))
			return
		}
	}
	query := r.URL.Query()
	query.Del("access_token")
	start := time.Now()
	ans, err := g.callWeCom(r, app, api, query, body)
	if err != nil {
		g.log.Warn("wecom pass-through failed", zap.String("client", key.Name), zap.String("api", api), zap.Error(err))
		writeJSON(w, http.StatusOK, wecomError(-1, "system busy"))
		return
	}
	g.audit(key, app.Name, api, r.Method, ans.ErrCode, time.Since(start))
	if ans.ContentType != "" {
		w.Header().Set("Content-Type", ans.ContentType)
	}
	w.WriteHeader(ans.Status)
	io.Copy(w, bytes.NewReader(ans.Body))
}

// callWeCom calls WeCom with the app's shared token, refreshing it once when
// WeCom says it expired.
func (g *Gateway) callWeCom(r *http.Request, app wecom.AppConfig, api string, query map[string][]string, body []byte) (wecom.RawAnswer, error) {
	var ans wecom.RawAnswer
	for fresh := range 2 {
		tok, err := g.appToken(r.Context(), app, fresh == 1)
		if err != nil {
			return ans, err
		}
		ans, err = g.wecom.Do(r.Context(), r.Method, api, tok, query, r.Header.Get("Content-Type"), body)
		if err != nil || (ans.ErrCode != 40014 && ans.ErrCode != 42001) {
			return ans, err
		}
	}
	return ans, nil
}

// passThroughApp is the app named by the header, if the key may use it, else
// the key's first app.
func (g *Gateway) passThroughApp(k *APIKey, name string) (wecom.AppConfig, bool) {
	if name == "" {
		if len(k.Apps) > 0 && k.Apps[0] != "*" {
			name = k.Apps[0]
		} else if len(g.cfg.WeCom.Apps) > 0 {
			name = g.cfg.WeCom.Apps[0].Name
		}
	}
	if !keyAllows(k, name) {
		return wecom.AppConfig{}, false
	}
	return g.cfg.WeCom.App(name)
}

// audit logs one pass-through call: who called which API through which app,
// and WeCom's errcode; never the body or the token.
func (g *Gateway) audit(k *APIKey, app, api, method string, errcode int, took time.Duration) {
	g.metrics.passThrough.WithLabelValues(k.Name, api, resultCode(errcode)).Inc()
	g.log.Info("wecom pass-through", zap.String("client", k.Name), zap.String("app", app), zap.String("api", api),
		zap.String("method", method), zap.Int("errcode", errcode), zap.Duration("took", took))
}

func resultCode(errcode int) string {
	if errcode == 0 {
		return "ok"
	}
	return strconv.Itoa(errcode)
}
