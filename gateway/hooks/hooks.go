// Package hooks is the gateway's inbound hooks: POST /api/v1/hooks/{name}
// takes a CI system's, monitoring system's or ticketing SaaS's own webhook
// payload, checks the hook's secret (HMAC of the body, a bearer token or a
// token header), maps the payload through the hook's templates to a WeCom
// message for users, departments, tags or a group chat, and queues it on
// WXHUB_OUT through the gateway's push path (so it gets the sender's
// limits, quiet hours, priority and dedup). The gateway mounts the handler;
// see docs/connectors/http.md for worked examples.
package hooks

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"text/template"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/internal/promreg"
	"github.com/wxhub/wxhub/internal/strictyaml"
	"github.com/wxhub/wxhub/internal/tmpl"
	"github.com/wxhub/wxhub/internal/yamlpath"
	"github.com/wxhub/wxhub/schemas"
)

// Config is the list of hooks: the top-level `hooks:` key of the config.
type Config []Hook

// Auth kinds of a hook.
const (
	// AuthHMAC: the Header (default X-Hub-Signature-256) is
	// "sha256=" + hex(HMAC-SHA256(secret, body)), or the bare hex (GitHub,
	// Jira Cloud, Gitea, most SaaS).
	AuthHMAC = "hmac"
	// AuthBearer: Authorization: Bearer <secret> (Alertmanager's http_config).
	AuthBearer = "bearer"
	// AuthToken: the Header carries the secret as it is (GitLab's X-Gitlab-Token).
	AuthToken = "token"
)

// Hook is one inbound hook. Every field called a template is Go
// text/template over {payload: the JSON body, headers: the request's
// headers (first values, canonical names), hook: the name}.
type Hook struct {
	// Name is the last path element: POST /api/v1/hooks/<name>.
	Name string `yaml:"name"`
	// Auth is hmac (default), bearer or token.
	Auth string `yaml:"auth"`
	// Secret shared with the sender; "env:NAME" reads it from the
	// environment variable NAME. At least 16 characters.
	Secret string `yaml:"secret"`
	// Header of the signature (hmac, default X-Hub-Signature-256) or of the
	// token (token, required).
	Header string `yaml:"header"`
	// App sends the message; required, a configured app's name.
	App string `yaml:"app"`
	// To says who gets it.
	To Recipients `yaml:"to"`
	// MsgType: text (default), markdown or textcard.
	MsgType string `yaml:"msgtype"`
	// Content template of text and markdown messages.
	Content string `yaml:"content"`
	// Title, Description, URL and ButtonText templates of a textcard
	// (ButtonText may be empty).
	Title       string `yaml:"title"`
	Description string `yaml:"description"`
	URL         string `yaml:"url"`
	ButtonText  string `yaml:"btntxt"`
	// Priority template: renders urgent, normal or bulk; empty is normal.
	Priority string `yaml:"priority"`
	// DedupKey template: a repeated key is queued once (the push API's dedup_key).
	DedupKey string `yaml:"dedup_key"`
	// SkipIf template: when it renders "true", the payload is acknowledged
	// (200, "skipped") and nothing is sent, e.g. a pipeline still running.
	SkipIf string `yaml:"skip_if"`
}

// Recipients are templates; Users, Parties and Tags render lists separated
// by "|", "," or white space ("@all" for everyone). Chat is a group chat id
// (appchat/send) and excludes the others.
type Recipients struct {
	Users   string `yaml:"users"`
	Parties string `yaml:"parties"`
	Tags    string `yaml:"tags"`
	Chat    string `yaml:"chat"`
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Decode decodes the `hooks:` list strictly and validates it; errors name
// the key relative to the list ("[1].secret: is required (line 12)").
func Decode(node *yaml.Node) (Config, error) {
	var c Config
	if err := strictyaml.Decode(node, &c, ""); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, yamlpath.Annotate(node, err)
	}
	return c, nil
}

// Validate names the first bad key ("[2].to: ...").
func (c Config) Validate() error {
	seen := map[string]bool{}
	for i, h := range c {
		if _, err := compile(h); err != nil {
			return fmt.Errorf("[%d].%w", i, err)
		}
		if seen[h.Name] {
			return fmt.Errorf("[%d].name: %q is used twice", i, h.Name)
		}
		seen[h.Name] = true
	}
	return nil
}

// Hook returns the hook called name.
func (c Config) Hook(name string) (Hook, bool) {
	for _, h := range c {
		if h.Name == name {
			return h, true
		}
	}
	return Hook{}, false
}

// CheckApps names the first hook whose app is not known.
func (c Config) CheckApps(known func(app string) bool) error {
	for i, h := range c {
		if !known(h.App) {
			return fmt.Errorf("[%d].app: no app named %q", i, h.App)
		}
	}
	return nil
}

type compiled struct {
	Hook
	secret                                              string
	users, parties, tags, chat                          *template.Template
	content, title, desc, url, btn, prio, dedup, skipIf *template.Template
}

func compile(h Hook) (*compiled, error) {
	k := &compiled{Hook: h}
	if !validName.MatchString(h.Name) {
		return nil, fmt.Errorf("name: %q must be 1-64 letters, digits, '_' or '-'", h.Name)
	}
	switch h.Auth {
	case "", AuthHMAC, AuthBearer:
	case AuthToken:
		if h.Header == "" {
			return nil, errors.New("header: is required for auth token (e.g. X-Gitlab-Token)")
		}
	default:
		return nil, fmt.Errorf("auth: %q is not hmac, bearer or token", h.Auth)
	}
	k.secret = h.Secret
	if name, ok := strings.CutPrefix(h.Secret, "env:"); ok {
		if k.secret = os.Getenv(name); k.secret == "" {
			return nil, fmt.Errorf("secret: environment variable %s is not set", name)
		}
	}
	if len(k.secret) < 16 {
		return nil, errors.New("secret: is required, at least 16 characters")
	}
	if h.App == "" {
		return nil, errors.New("app: is required")
	}
	var err error
	parse := func(key, text string) *template.Template {
		if err != nil || text == "" {
			return nil
		}
		var t *template.Template
		t, err = tmpl.Parse(key, text)
		return t
	}
	k.users, k.parties, k.tags, k.chat = parse("to.users", h.To.Users), parse("to.parties", h.To.Parties), parse("to.tags", h.To.Tags), parse("to.chat", h.To.Chat)
	k.content, k.title, k.desc = parse("content", h.Content), parse("title", h.Title), parse("description", h.Description)
	k.url, k.btn = parse("url", h.URL), parse("btntxt", h.ButtonText)
	k.prio, k.dedup, k.skipIf = parse("priority", h.Priority), parse("dedup_key", h.DedupKey), parse("skip_if", h.SkipIf)
	if err != nil {
		return nil, err
	}
	switch {
	case k.users == nil && k.parties == nil && k.tags == nil && k.chat == nil:
		return nil, errors.New("to: needs users, parties, tags or chat")
	case k.chat != nil && (k.users != nil || k.parties != nil || k.tags != nil):
		return nil, errors.New("to.chat: a group chat excludes users, parties and tags")
	}
	switch h.MsgType {
	case "", "text", "markdown":
		if k.content == nil {
			return nil, fmt.Errorf("content: is required for msgtype %s", cmpOr(h.MsgType, "text"))
		}
	case "textcard":
		if k.title == nil || k.desc == nil || k.url == nil {
			return nil, errors.New("msgtype: textcard needs title, description and url")
		}
	default:
		return nil, fmt.Errorf("msgtype: %q is not text, markdown or textcard", h.MsgType)
	}
	return k, nil
}

// Publish queues one message on WXHUB_OUT: the gateway's push path
// (status record, dedup by msg.DedupKey, publish). hook is the hook's name,
// for the message's source ("hook/<name>") and id. It returns the message id.
type Publish func(ctx context.Context, hook string, msg schemas.OutboundData) (id string, err error)

// Handler serves POST /api/v1/hooks/{name}; safe for concurrent use.
type Handler struct {
	hooks    map[string]*compiled
	publish  Publish
	log      *zap.Logger
	requests *prometheus.CounterVec
	// MaxBodyBytes bounds a payload. Default 1 MiB.
	MaxBodyBytes int64
}

// Option adjusts a Handler.
type Option func(*Handler)

// WithRegisterer registers wxhub_hook_requests_total{hook, result} (result:
// queued, skipped, 400, 401, 404, 413, 503) with reg; several handlers may
// share one registry.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(h *Handler) {
		if reg != nil {
			h.requests = promreg.MustRegister(reg, h.requests)
		}
	}
}

// New validates cfg and returns the handler. Mount it on
// "POST /api/v1/hooks/{name}" (it reads the name from the path value, or
// from the last path element).
func New(cfg Config, publish Publish, log *zap.Logger, opts ...Option) (*Handler, error) {
	if log == nil {
		log = zap.NewNop()
	}
	h := &Handler{hooks: map[string]*compiled{}, publish: publish, log: log, MaxBodyBytes: 1 << 20,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxhub_hook_requests_total",
			Help: "Inbound hook requests by hook and result (queued, skipped, or the HTTP status of a refusal).",
		}, []string{"hook", "result"})}
	for _, o := range opts {
		o(h)
	}
	for i, hk := range cfg {
		k, err := compile(hk)
		if err != nil {
			return nil, fmt.Errorf("hooks[%d].%w", i, err)
		}
		h.hooks[hk.Name] = k
	}
	return h, nil
}

// ServeHTTP answers 202 {"id","status":"queued"} once the message is queued;
// 200 {"status":"skipped"} when skip_if holds; 401 for a bad or missing
// secret (nothing is queued); 404 for an unknown hook; 400 for a payload
// that is not JSON or does not map to a message (the key at fault in
// "field"); 503 when the queue is unavailable (the sender should retry).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, result := "", ""
	defer func() {
		if _, known := h.hooks[name]; !known {
			name = "unknown" // an attacker's names must not become series
		}
		h.requests.WithLabelValues(name, result).Inc()
	}()
	if r.Method != http.MethodPost {
		result = "405"
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "POST only"})
		return
	}
	name = r.PathValue("name")
	if name == "" {
		name = r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	}
	k, ok := h.hooks[name]
	if !ok {
		result = "404"
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such hook"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.MaxBodyBytes))
	if err != nil {
		result = "413"
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body too large"})
		return
	}
	if !k.authorized(r, body) {
		h.log.Warn("hook refused: bad or missing secret", zap.String("hook", name), zap.String("remote", r.RemoteAddr))
		result = "401"
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "bad or missing signature or token"})
		return
	}
	msg, err := k.message(body, r.Header)
	if errors.Is(err, ErrSkipped) {
		result = "skipped"
		writeJSON(w, http.StatusOK, map[string]string{"status": "skipped"})
		return
	}
	if err != nil {
		var me *MappingError
		field := ""
		if errors.As(err, &me) {
			field = me.Key
		}
		h.log.Info("hook payload not mapped", zap.String("hook", name), zap.Error(err))
		result = "400"
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error(), "field": field})
		return
	}
	id, err := h.publish(r.Context(), name, msg)
	if err != nil {
		h.log.Warn("hook not queued", zap.String("hook", name), zap.Error(err))
		result = "503"
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "queue unavailable, retry"})
		return
	}
	h.log.Info("hook queued", zap.String("hook", name), zap.String("id", id), zap.String("app", msg.App),
		zap.String("kind", msg.Kind), zap.String("priority", msg.Priority))
	result = "queued"
	writeJSON(w, http.StatusAccepted, map[string]string{"id": id, "status": "queued"})
}

func (k *compiled) authorized(r *http.Request, body []byte) bool {
	eq := func(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	switch k.Auth {
	case AuthBearer:
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		return ok && eq(tok, k.secret)
	case AuthToken:
		return eq(r.Header.Get(k.Header), k.secret)
	default:
		got := strings.TrimPrefix(r.Header.Get(cmpOr(k.Header, "X-Hub-Signature-256")), "sha256=")
		sig, err := hex.DecodeString(got)
		if err != nil || len(sig) == 0 {
			return false
		}
		m := hmac.New(sha256.New, []byte(k.secret))
		m.Write(body)
		return hmac.Equal(sig, m.Sum(nil))
	}
}

// ErrSkipped: skip_if held; nothing is sent.
var ErrSkipped = errors.New("hooks: skipped by skip_if")

// MappingError is a payload that did not map to a message; Key is the
// hook's key at fault.
type MappingError struct {
	Key string
	Err error
}

func (e *MappingError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *MappingError) Unwrap() error { return e.Err }

// DryRun maps payload through hook h as a request would, without checking
// the secret or queueing anything: the message that would be queued, or
// ErrSkipped, or the mapping error.
func DryRun(h Hook, payload []byte) (schemas.OutboundData, error) {
	k, err := compile(h)
	if err != nil {
		return schemas.OutboundData{}, err
	}
	return k.message(payload, http.Header{})
}

// message renders the payload into a message.
func (k *compiled) message(payload []byte, header http.Header) (schemas.OutboundData, error) {
	var p any
	if err := json.Unmarshal(payload, &p); err != nil {
		return schemas.OutboundData{}, &MappingError{Key: "payload", Err: fmt.Errorf("not JSON: %w", err)}
	}
	p = tmpl.JSONData(payload) // numbers as written
	hd := map[string]any{}
	for name, v := range header {
		if len(v) > 0 {
			hd[name] = v[0]
		}
	}
	data := map[string]any{"payload": p, "headers": hd, "hook": k.Name}
	var err error
	render := func(key string, t *template.Template) string {
		if err != nil || t == nil {
			return ""
		}
		var s string
		if s, err = tmpl.Execute(t, data); err != nil {
			err = &MappingError{Key: key, Err: err}
		}
		return strings.TrimSpace(s)
	}
	if skip := render("skip_if", k.skipIf); err == nil && tmpl.Truthy(skip) {
		return schemas.OutboundData{}, ErrSkipped
	}
	body := map[string]any{}
	kind := schemas.KindMessage
	if k.chat != nil {
		kind = schemas.KindAppChat
		body["chatid"] = render("to.chat", k.chat)
		if err == nil && body["chatid"] == "" {
			err = &MappingError{Key: "to.chat", Err: errors.New("rendered empty")}
		}
	} else {
		for _, f := range []struct {
			field, key string
			t          *template.Template
		}{{"touser", "to.users", k.users}, {"toparty", "to.parties", k.parties}, {"totag", "to.tags", k.tags}} {
			if l := list(render(f.key, f.t)); l != "" {
				body[f.field] = l
			}
		}
		if err == nil && len(body) == 0 {
			err = &MappingError{Key: "to", Err: errors.New("users, parties and tags all rendered empty")}
		}
	}
	msgtype := cmpOr(k.MsgType, "text")
	body["msgtype"] = msgtype
	switch msgtype {
	case "textcard":
		card := map[string]string{"title": render("title", k.title), "description": render("description", k.desc), "url": render("url", k.url)}
		if b := render("btntxt", k.btn); b != "" {
			card["btntxt"] = b
		}
		body["textcard"] = card
	default:
		c := render("content", k.content)
		if err == nil && c == "" {
			err = &MappingError{Key: "content", Err: errors.New("rendered empty")}
		}
		body[msgtype] = map[string]string{"content": c}
	}
	prio := cmpOr(render("priority", k.prio), schemas.PriorityNormal)
	dedup := render("dedup_key", k.dedup)
	if err != nil {
		return schemas.OutboundData{}, err
	}
	switch prio {
	case schemas.PriorityUrgent, schemas.PriorityNormal, schemas.PriorityBulk:
	default:
		return schemas.OutboundData{}, &MappingError{Key: "priority", Err: fmt.Errorf("rendered %q, want urgent, normal or bulk", prio)}
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return schemas.OutboundData{}, err
	}
	return schemas.OutboundData{App: k.App, Kind: kind, Priority: prio, DedupKey: dedup, Body: raw}, nil
}

// list joins a rendered recipient list with "|", as message/send wants.
func list(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '|' || r == ',' || r == ' ' || r == '\n' || r == '\t' }), "|")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
