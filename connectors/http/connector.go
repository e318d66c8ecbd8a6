// Package httpconn is the http connector: a built-in connector, configured
// in YAML only, that turns each routed event into one HTTP request to a
// legacy system or SaaS and the answer into the reply. Any number of named
// instances run at once (`type: http`), each with the runner's guarantees:
// per-user order, retries with backoff, dead letters, replies through
// WXHUB_OUT. See docs/connectors/http.md.
package httpconn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/internal/tmpl"
	"github.com/wxhub/wxhub/internal/yamlpath"
	"github.com/wxhub/wxhub/schemas"
)

// Type is the connector type in the config (`type: http`).
const Type = "http"

// maxBody bounds a response read into memory.
const maxBody = 4 << 20

// Builtin registers the http connector type: no default instance; each
// section with `type: http` is one.
var Builtin = connectors.Builtin{
	Type:      Type,
	Summary:   "calls an HTTP API per event (YAML: request, auth, response mapping, reply template)",
	Configure: configure,
}

func configure(name string, node *yaml.Node) (connectors.Instance, error) {
	c, err := Decode(node)
	if err != nil {
		return connectors.Instance{}, err
	}
	return connectors.Instance{
		Rules:   c.rules(name),
		Options: c.Options(),
		New: func(_ context.Context, deps connectors.Deps) (connectors.Handler, error) {
			return New(name, c, deps.Logger)
		},
	}, nil
}

// Decode decodes an instance's section strictly and validates it; errors
// name the key relative to the section and its line.
func Decode(node *yaml.Node) (Config, error) {
	var c Config
	if err := connectors.DecodeSection(node, &c); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, yamlpath.Annotate(node, err)
	}
	return c, nil
}

// rules is the routing rule of match, if any.
func (c Config) rules(name string) []schemas.RouteRule {
	if reflect.DeepEqual(c.Match, schemas.RouteMatch{}) {
		return nil
	}
	return []schemas.RouteRule{{Name: "http-" + name, Description: c.Description, Match: c.Match, To: schemas.Strings{name}}}
}

// Option adjusts a Connector.
type Option func(*Connector)

// WithClock sets the clock for HMAC timestamps and token expiry (tests).
func WithClock(now func() time.Time) Option { return func(c *Connector) { c.now = now } }

// Connector is one http connector instance; a connectors.Handler, safe for
// concurrent use.
type Connector struct {
	name   string
	k      *compiled
	r      *resty.Client
	tokens *tokenSource
	log    *zap.Logger
	now    func() time.Time
}

// New returns the instance name configured by cfg.
func New(name string, cfg Config, log *zap.Logger, opts ...Option) (*Connector, error) {
	k, err := compile(cfg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	c := &Connector{name: name, k: k, log: log, now: time.Now}
	for _, o := range opts {
		o(c)
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	// No retries here: the runner retries whole events, with backoff and a DLQ.
	c.r = resty.New().SetTimeout(timeout).SetResponseBodyLimit(maxBody).
		SetHeader("User-Agent", "wxhub-http-connector/"+name).
		SetRedirectPolicy(resty.FlexibleRedirectPolicy(5)).SetLogger(restyLogger{log.Sugar()})
	if cfg.Auth.Kind == AuthOAuth2 {
		c.tokens = &tokenSource{r: c.r, url: cfg.Auth.TokenURL, id: cfg.Auth.ClientID, secret: k.csecr,
			scopes: cfg.Auth.Scopes, params: cfg.Auth.AuthStyle == "params", now: func() time.Time { return c.now() }}
	}
	return c, nil
}

// Spec declares the connector to the runner.
func (c *Connector) Spec() connectors.Spec {
	return connectors.Spec{Name: c.name, Concurrency: c.k.cfg.Concurrency}
}

// Prepared is a request ready to send (or to show in a dry run).
type Prepared struct {
	Method  string      `json:"method"`
	URL     string      `json:"url"`
	Header  http.Header `json:"headers"`
	Body    string      `json:"body,omitempty"`
	bodyRaw []byte
}

// Answer is the part of a response the mapping and the reply look at.
type Answer struct {
	Status int         `json:"status"`
	Header http.Header `json:"headers,omitempty"`
	Body   []byte      `json:"-"`
}

// Handle implements connectors.Handler: one request per event; the outcome
// follows the response mapping (retry: an error the runner retries; drop:
// connectors.Permanent, so the event goes to the DLQ with the reason).
func (c *Connector) Handle(ctx context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
	data := c.templateData(ev)
	p, err := c.prepare(data)
	if err != nil {
		return nil, connectors.Permanent(err)
	}
	ans, err := c.send(ctx, p)
	if err != nil {
		return nil, err
	}
	return c.outcome(ev, data, ans)
}

// templateData is what request templates see; see docs/connectors/http.md.
func (c *Connector) templateData(ev *schemas.Event) map[string]any {
	d := map[string]any{
		"event": tmpl.ToData(ev), "data": tmpl.ToData(ev.Data), "id": ev.ID,
		"user": ev.Data.User, "app": ev.Data.App, "content": ev.Data.Content, "connector": c.name,
	}
	var groups []string
	if c.k.content != nil {
		text := ev.Data.Content
		if text == "" {
			text = ev.Data.Recognition
		}
		groups = c.k.content.FindStringSubmatch(text)
	}
	if groups == nil {
		groups = []string{}
	}
	d["match"] = groups
	return d
}

func (c *Connector) prepare(data map[string]any) (*Prepared, error) {
	u, err := tmpl.Execute(c.k.url, data)
	if err != nil {
		return nil, fmt.Errorf("request.url: %w", err)
	}
	p := &Prepared{Method: c.k.method, URL: strings.TrimSpace(u), Header: http.Header{}}
	if pu, err := url.Parse(p.URL); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		// Retrying the same event renders the same URL: a drop, not a retry.
		return nil, fmt.Errorf("request.url: rendered %q, not an http(s) URL (urlquery the user's text)", redact(p.URL))
	}
	if c.k.body != nil {
		b, err := tmpl.Execute(c.k.body, data)
		if err != nil {
			return nil, fmt.Errorf("request.body: %w", err)
		}
		p.Body, p.bodyRaw = b, []byte(b)
		p.Header.Set("Content-Type", cmpOr(c.k.cfg.Request.ContentType, "application/json"))
	}
	for name, t := range c.k.headers {
		v, err := tmpl.Execute(t, data)
		if err != nil {
			return nil, fmt.Errorf("request.headers.%s: %w", name, err)
		}
		p.Header.Set(name, v)
	}
	switch c.k.cfg.Auth.Kind {
	case AuthBearer:
		p.Header.Set("Authorization", "Bearer "+c.k.token)
	case AuthBasic:
		r, _ := http.NewRequest(http.MethodGet, "http://x", nil)
		r.SetBasicAuth(c.k.cfg.Auth.Username, c.k.password)
		p.Header.Set("Authorization", r.Header.Get("Authorization"))
	case AuthHMAC:
		ts := c.now().Unix()
		p.Header.Set(cmpOr(c.k.cfg.Auth.TimestampHeader, "X-Timestamp"), fmt.Sprint(ts))
		p.Header.Set(cmpOr(c.k.cfg.Auth.Header, "X-Signature"), Sign(c.k.secret, ts, p.bodyRaw))
	}
	return p, nil
}

// send makes the call; with OAuth2, a 401 fetches a new token and tries once more.
func (c *Connector) send(ctx context.Context, p *Prepared) (*Answer, error) {
	token := ""
	for try := 0; ; try++ {
		req := c.r.R().SetContext(ctx).SetHeaderMultiValues(p.Header)
		if p.bodyRaw != nil {
			req.SetBody(p.bodyRaw)
		}
		if c.tokens != nil {
			var err error
			if token, err = c.tokens.get(ctx, token); err != nil {
				return nil, err
			}
			req.SetAuthToken(token)
		}
		resp, err := req.Execute(p.Method, p.URL)
		if err != nil {
			if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, ctx.Err()
			}
			// Timeouts, refused connections, resets: the system is not there now.
			// url.Error repeats the URL, query (maybe a key) included: keep its cause only.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, fmt.Errorf("%s %s: %w", p.Method, redact(p.URL), err)
		}
		if resp.StatusCode() == http.StatusUnauthorized && c.tokens != nil && try == 0 {
			c.log.Debug("401 with the cached token: fetching a new one")
			continue
		}
		return &Answer{Status: resp.StatusCode(), Header: resp.Header(), Body: resp.Body()}, nil
	}
}

// Outcomes of a response.
const (
	OutcomeSuccess = "success"
	OutcomeRetry   = "retry"
	OutcomeDrop    = "drop"
)

// classify maps a response to an outcome and, for retry and drop, a reason.
func (c *Connector) classify(data map[string]any) (string, string, error) {
	st := data["status"].(int)
	in := func(l []statusRange) bool {
		for _, r := range l {
			if r.has(st) {
				return true
			}
		}
		return false
	}
	reason := fmt.Sprintf("HTTP %d: %s", st, snippet(data["body"].(string)))
	switch {
	case in(c.k.success):
		if c.k.dropIf != nil {
			s, err := tmpl.Execute(c.k.dropIf, data)
			if err != nil {
				return "", "", fmt.Errorf("response.drop_if: %w", err)
			}
			if tmpl.Truthy(s) {
				return OutcomeDrop, "response.drop_if holds: " + reason, nil
			}
		}
		if c.k.retryIf != nil {
			s, err := tmpl.Execute(c.k.retryIf, data)
			if err != nil {
				return "", "", fmt.Errorf("response.retry_if: %w", err)
			}
			if tmpl.Truthy(s) {
				return OutcomeRetry, "response.retry_if holds: " + reason, nil
			}
		}
		return OutcomeSuccess, "", nil
	case in(c.k.retry):
		return OutcomeRetry, reason, nil
	default:
		return OutcomeDrop, reason, nil
	}
}

func (c *Connector) responseData(data map[string]any, ans *Answer) map[string]any {
	d := make(map[string]any, len(data)+4)
	for k, v := range data {
		d[k] = v
	}
	h := map[string]any{}
	for k, v := range ans.Header {
		if len(v) > 0 {
			h[k] = v[0]
		}
	}
	d["status"], d["body"], d["json"], d["headers"] = ans.Status, string(ans.Body), tmpl.JSONData(ans.Body), h
	return d
}

// outcome applies the response mapping and, on success, builds the replies.
func (c *Connector) outcome(ev *schemas.Event, data map[string]any, ans *Answer) ([]connectors.Reply, error) {
	rd := c.responseData(data, ans)
	outcome, reason, err := c.classify(rd)
	if err != nil {
		return nil, connectors.Permanent(err)
	}
	switch outcome {
	case OutcomeRetry:
		return nil, errors.New(reason)
	case OutcomeDrop:
		return nil, connectors.Permanent(errors.New(reason))
	}
	replies, err := c.replies(ev, rd, ans)
	if err != nil {
		return nil, connectors.Permanent(err)
	}
	return replies, nil
}

func (c *Connector) replies(ev *schemas.Event, rd map[string]any, ans *Answer) ([]connectors.Reply, error) {
	var r connectors.Reply
	switch kind := c.k.cfg.Reply.Kind; kind {
	case ReplyNone:
		return nil, nil
	case ReplyWeCom:
		var ok bool
		var err error
		if r, ok, err = connectors.WeComBody(ev.Data.User, ans.Body); err != nil {
			return nil, fmt.Errorf("reply: the response is %w", err)
		} else if !ok {
			return nil, nil
		}
	default:
		out, err := tmpl.Execute(c.k.reply, rd)
		if err != nil {
			return nil, fmt.Errorf("reply.template: %w", err)
		}
		out = strings.TrimSpace(out)
		if out == "" {
			return nil, nil
		}
		switch kind {
		case ReplyText:
			r = connectors.Text(ev.Data.User, out)
		case ReplyMarkdown:
			r = connectors.Markdown(ev.Data.User, out)
		case ReplyTemplateCard:
			var card map[string]any
			if err := json.Unmarshal([]byte(out), &card); err != nil {
				return nil, fmt.Errorf("reply.template: the template card is not a JSON object: %w", err)
			}
			if _, ok := card["card_type"]; !ok {
				return nil, fmt.Errorf("reply.template: the template card has no card_type")
			}
			r = connectors.TemplateCard(ev.Data.User, card)
		}
	}
	if p := c.k.cfg.Reply.Priority; p != "" {
		r = r.WithPriority(p)
	}
	return []connectors.Reply{r}, nil
}

func snippet(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 200 {
		return string(r[:200]) + "…"
	}
	return s
}

// redact drops a URL's query and user info from logs and errors: they may hold keys.
func redact(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			u = u[:j+3] + u[i+1:]
		}
	}
	return u
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// restyLogger sends resty's own messages to zap at debug (it warns about
// basic auth over plain HTTP on every call, which an operator chose knowingly).
type restyLogger struct{ s *zap.SugaredLogger }

func (l restyLogger) Errorf(format string, v ...any) { l.s.Errorf(format, v...) }
func (l restyLogger) Warnf(format string, v ...any)  { l.s.Debugf(format, v...) }
func (l restyLogger) Debugf(format string, v ...any) { l.s.Debugf(format, v...) }
