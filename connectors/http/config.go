package httpconn

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/internal/tmpl"
	"github.com/wxhub/wxhub/schemas"
)

// Config is one http connector instance's section (connectors.<name> with
// `type: http`). Every string called a template is Go text/template over the
// data described in docs/connectors/http.md.
type Config struct {
	// Match, if set, routes events to this instance (a rule placed before the
	// configured router rules); without it the router's rules name the
	// instance in `to:`. A content regexp's groups are .match in templates.
	Match schemas.RouteMatch `yaml:"match"`
	// Description is the rule's line in the help text ("工单 <号码>: 查询工单").
	Description string `yaml:"description"`
	// Request is the call made for each event.
	Request Request `yaml:"request"`
	// Auth adds credentials to the call; empty kind: none.
	Auth Auth `yaml:"auth"`
	// Timeout of one call (the OAuth2 token fetch included). Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// Response says which answers are success, retry or drop.
	Response Response `yaml:"response"`
	// Reply says what is sent to the user on success.
	Reply ReplyConfig `yaml:"reply"`

	connectors.RunnerConfig `yaml:",inline"`
}

// Request is the HTTP call.
type Request struct {
	// Method: GET (default), POST, PUT, PATCH or DELETE.
	Method string `yaml:"method"`
	// URL template; required. Path pieces from the user's text should go
	// through urlquery: {{ index .match 1 | urlquery }}.
	URL string `yaml:"url"`
	// Headers: name → value template.
	Headers map[string]string `yaml:"headers"`
	// Body template; empty: no body. For JSON, {{ json .content }} quotes a value.
	Body string `yaml:"body"`
	// ContentType of the body. Default application/json when there is a body.
	ContentType string `yaml:"content_type"`
}

// Auth kinds.
const (
	AuthNone   = ""
	AuthBearer = "bearer" // Authorization: Bearer <token>
	AuthBasic  = "basic"  // Authorization: Basic base64(username:password)
	// AuthHMAC signs the body: <header>: sha256=hex(HMAC-SHA256(secret, <timestamp>.<body>)),
	// <timestamp_header>: the Unix time in seconds.
	AuthHMAC = "hmac"
	// AuthOAuth2 fetches a token with the client-credentials grant (RFC 6749
	// 4.4), caches it until shortly before it expires, and fetches a new one
	// when the server answers 401.
	AuthOAuth2 = "oauth2"
)

// Auth holds the credentials. A secret value written "env:NAME" is read from
// the environment variable NAME when the instance is configured.
type Auth struct {
	Kind string `yaml:"kind"` // bearer, basic, hmac, oauth2 or empty
	// bearer
	Token string `yaml:"token"`
	// basic
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// hmac
	Secret          string `yaml:"secret"`
	Header          string `yaml:"header"`           // default X-Signature
	TimestampHeader string `yaml:"timestamp_header"` // default X-Timestamp
	// oauth2
	TokenURL     string   `yaml:"token_url"`
	ClientID     string   `yaml:"client_id"`
	ClientSecret string   `yaml:"client_secret"`
	Scopes       []string `yaml:"scopes"`
	// AuthStyle: "header" (default, client id and secret as HTTP basic auth)
	// or "params" (in the form body), as the token endpoint wants.
	AuthStyle string `yaml:"auth_style"`
}

// Response maps an answer to an outcome, Benthos style. The status lists
// are checked in the order success, retry, drop; a status in none of them
// is dropped. Entries are codes ("404"), classes ("5xx") or ranges
// ("500-599"). A network error or timeout is retried.
type Response struct {
	// Success statuses. Default [2xx].
	Success []string `yaml:"success"`
	// Retry statuses: the event is retried with backoff and dead-lettered
	// after max_deliver deliveries. Default [408, 429, 5xx].
	Retry []string `yaml:"retry"`
	// Drop statuses: the event goes to the dead-letter queue at once, with
	// the status and the start of the body as the reason. Default: the rest.
	Drop []string `yaml:"drop"`
	// RetryIf and DropIf are condition templates over a success response
	// (rendering "true" holds): e.g. {{ ne (int .json.errcode) 0 }}.
	// DropIf is checked first.
	RetryIf string `yaml:"retry_if"`
	DropIf  string `yaml:"drop_if"`
}

// Reply kinds.
const (
	ReplyNone         = "none"
	ReplyText         = "text"
	ReplyMarkdown     = "markdown"
	ReplyTemplateCard = "template_card" // the template renders the template_card JSON object
	ReplyWeCom        = "wecom"         // the response body is a WeCom message body
)

// ReplyConfig is how a success response becomes the reply.
type ReplyConfig struct {
	// Kind: text, markdown, template_card, wecom or none. Default text when
	// a template is set, none otherwise.
	Kind string `yaml:"kind"`
	// Template over the event and the response; required for text,
	// markdown and template_card. Rendering only white space sends nothing.
	Template string `yaml:"template"`
	// Priority of the reply: urgent, normal (default) or bulk.
	Priority string `yaml:"priority"`
}

// compiled is a Config turned into what a call needs.
type compiled struct {
	cfg                            Config
	method                         string
	url, body, retryIf, dropIf     *template.Template
	reply                          *template.Template
	headers                        map[string]*template.Template
	success, retry, drop           []statusRange
	content                        *regexp.Regexp
	token, password, secret, csecr string
}

type statusRange struct{ lo, hi int }

func (r statusRange) has(s int) bool { return s >= r.lo && s <= r.hi }

func parseStatuses(key string, l []string) ([]statusRange, error) {
	var out []statusRange
	for i, s := range l {
		s = strings.TrimSpace(s)
		var r statusRange
		switch {
		case len(s) == 3 && strings.HasSuffix(strings.ToLower(s), "xx") && s[0] >= '1' && s[0] <= '5':
			r = statusRange{int(s[0]-'0') * 100, int(s[0]-'0')*100 + 99}
		case strings.Contains(s, "-"):
			a, b, _ := strings.Cut(s, "-")
			lo, err1 := strconv.Atoi(strings.TrimSpace(a))
			hi, err2 := strconv.Atoi(strings.TrimSpace(b))
			if err1 != nil || err2 != nil || lo > hi {
				return nil, fmt.Errorf("%s[%d]: %q is not a status range like 500-599", key, i, s)
			}
			r = statusRange{lo, hi}
		default:
			c, err := strconv.Atoi(s)
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %q is not a status, a class like 5xx or a range like 500-599", key, i, s)
			}
			r = statusRange{c, c}
		}
		if r.lo < 100 || r.hi > 599 {
			return nil, fmt.Errorf("%s[%d]: %q is outside 100-599", key, i, s)
		}
		out = append(out, r)
	}
	return out, nil
}

// secret resolves "env:NAME".
func secret(key, v string) (string, error) {
	name, ok := strings.CutPrefix(v, "env:")
	if !ok {
		return v, nil
	}
	s, ok := os.LookupEnv(name)
	if !ok || s == "" {
		return "", fmt.Errorf("%s: environment variable %s is not set", key, name)
	}
	return s, nil
}

// Validate checks c and names the first bad key relative to the section.
func (c Config) Validate() error {
	_, err := compile(c)
	return err
}

func compile(c Config) (*compiled, error) {
	if err := c.RunnerConfig.Validate(); err != nil {
		return nil, err
	}
	k := &compiled{cfg: c, headers: map[string]*template.Template{}}
	k.method = strings.ToUpper(strings.TrimSpace(c.Request.Method))
	switch k.method {
	case "":
		k.method = http.MethodGet
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		return nil, fmt.Errorf("request.method: %q is not GET, POST, PUT, PATCH or DELETE", c.Request.Method)
	}
	if strings.TrimSpace(c.Request.URL) == "" {
		return nil, fmt.Errorf("request.url: is required")
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
	k.url = parse("request.url", c.Request.URL)
	k.body = parse("request.body", c.Request.Body)
	for name, v := range c.Request.Headers {
		k.headers[name] = parse("request.headers."+name, v)
	}
	k.retryIf = parse("response.retry_if", c.Response.RetryIf)
	k.dropIf = parse("response.drop_if", c.Response.DropIf)
	k.reply = parse("reply.template", c.Reply.Template)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(c.Request.URL, "{{") {
		if u, perr := url.Parse(c.Request.URL); perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("request.url: %q is not an http(s) URL", c.Request.URL)
		}
	}
	if c.Timeout < 0 {
		return nil, fmt.Errorf("timeout: must not be negative")
	}
	if c.Match.Content != "" {
		if k.content, err = regexp.Compile(c.Match.Content); err != nil {
			return nil, fmt.Errorf("match.content: invalid regexp: %w", err)
		}
	}
	if k.success, err = parseStatuses("response.success", defaultList(c.Response.Success, "2xx")); err != nil {
		return nil, err
	}
	if k.retry, err = parseStatuses("response.retry", defaultList(c.Response.Retry, "408", "429", "5xx")); err != nil {
		return nil, err
	}
	if k.drop, err = parseStatuses("response.drop", c.Response.Drop); err != nil {
		return nil, err
	}
	if err := k.compileAuth(); err != nil {
		return nil, err
	}
	switch c.Reply.Kind {
	case "":
		if k.reply != nil {
			k.cfg.Reply.Kind = ReplyText
		} else {
			k.cfg.Reply.Kind = ReplyNone
		}
	case ReplyText, ReplyMarkdown, ReplyTemplateCard:
		if k.reply == nil {
			return nil, fmt.Errorf("reply.template: is required for kind %s", c.Reply.Kind)
		}
	case ReplyWeCom, ReplyNone:
		if k.reply != nil {
			return nil, fmt.Errorf("reply.template: kind %s takes no template", c.Reply.Kind)
		}
	default:
		return nil, fmt.Errorf("reply.kind: %q is not text, markdown, template_card, wecom or none", c.Reply.Kind)
	}
	switch c.Reply.Priority {
	case "", schemas.PriorityUrgent, schemas.PriorityNormal, schemas.PriorityBulk:
	default:
		return nil, fmt.Errorf("reply.priority: %q is not urgent, normal or bulk", c.Reply.Priority)
	}
	return k, nil
}

func (k *compiled) compileAuth() error {
	a := k.cfg.Auth
	var err error
	need := func(key, v string) {
		if err == nil && v == "" {
			err = fmt.Errorf("auth.%s: is required for kind %s", key, a.Kind)
		}
	}
	switch a.Kind {
	case AuthNone:
		return nil
	case AuthBearer:
		need("token", a.Token)
	case AuthBasic:
		need("username", a.Username)
	case AuthHMAC:
		need("secret", a.Secret)
	case AuthOAuth2:
		need("token_url", a.TokenURL)
		need("client_id", a.ClientID)
		need("client_secret", a.ClientSecret)
		if err == nil {
			if u, perr := url.Parse(a.TokenURL); perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				err = fmt.Errorf("auth.token_url: %q is not an http(s) URL", a.TokenURL)
			}
		}
		switch a.AuthStyle {
		case "", "header", "params":
		default:
			return fmt.Errorf("auth.auth_style: %q is not header or params", a.AuthStyle)
		}
	default:
		return fmt.Errorf("auth.kind: %q is not bearer, basic, hmac or oauth2", a.Kind)
	}
	if err != nil {
		return err
	}
	if k.token, err = secret("auth.token", a.Token); err != nil {
		return err
	}
	if k.password, err = secret("auth.password", a.Password); err != nil {
		return err
	}
	if k.secret, err = secret("auth.secret", a.Secret); err != nil {
		return err
	}
	k.csecr, err = secret("auth.client_secret", a.ClientSecret)
	return err
}

func defaultList(l []string, d ...string) []string {
	if len(l) == 0 {
		return d
	}
	return l
}
