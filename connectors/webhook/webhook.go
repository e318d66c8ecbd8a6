// Package webhook is the event-webhook connector: events a subscription in
// the config selects (by message type, event, app, channel, card task...)
// are POSTed to a legacy system's URL as CloudEvents 1.0 structured JSON,
// signed with HMAC-SHA256 over the timestamp and the body (Stripe style,
// two keys for rotation). Delivery has the runner's guarantees: per-user
// order, retries with backoff, dead letters after max_deliver tries (shown
// on the dashboard, replayed with `wxhub dlq replay`). A WeCom message body
// or {"text": "..."} in the response is sent to the user as the answer.
//
// Receivers written in Go check requests with Verify.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/internal/yamlpath"
	"github.com/wxhub/wxhub/schemas"
)

// Type is the connector type in the config (`type: webhook`).
const Type = "webhook"

// Header names of a delivery.
const (
	// HeaderSignature: "t=<unix seconds>,v1=<hex>[,v1=<hex>]", one v1 per
	// signing key, each hex(HMAC-SHA256(key, "<t>.<body>")).
	HeaderSignature = "Wxhub-Signature"
	// HeaderEventID is the event's id: the receiver's idempotency key, as
	// the same event may be delivered again after a failure.
	HeaderEventID = "Wxhub-Event-Id"
	// HeaderAttempt is the delivery attempt, 1 for the first.
	HeaderAttempt = "Wxhub-Delivery-Attempt"
	// ContentType of a delivery: CloudEvents structured mode.
	ContentType = "application/cloudevents+json; charset=utf-8"
)

// Config is one webhook instance's section (connectors.<name> with `type: webhook`).
type Config struct {
	// URL the events are POSTed to; required.
	URL string `yaml:"url"`
	// Subscribe lists what the instance receives: each entry is a router
	// match (channel, app, msg_type, event, event_key, task_id, content,
	// keywords, users); an event matching any entry is delivered. The rules
	// continue, so other connectors still get the event. At least one.
	Subscribe []schemas.RouteMatch `yaml:"subscribe"`
	// Keys sign the deliveries: one, or two while rotating (the receiver
	// accepts either). "env:NAME" reads the environment variable NAME.
	Keys []string `yaml:"keys"`
	// Headers are added to every delivery (e.g. a static API key of the receiver).
	Headers map[string]string `yaml:"headers"`
	// Timeout of one delivery. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// IgnoreReply: do not send the response body as the answer.
	IgnoreReply bool `yaml:"ignore_reply"`

	connectors.RunnerConfig `yaml:",inline"`
}

// Validate names the first bad key relative to the section.
func (c Config) Validate() error {
	if err := c.RunnerConfig.Validate(); err != nil {
		return err
	}
	if u, err := url.Parse(c.URL); c.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		if c.URL == "" {
			return errors.New("url: is required")
		}
		return fmt.Errorf("url: %q is not an http(s) URL", c.URL)
	}
	if len(c.Subscribe) == 0 {
		return errors.New("subscribe: at least one subscription is required")
	}
	for i, m := range c.Subscribe {
		if m.Content != "" {
			if _, err := regexp.Compile(m.Content); err != nil {
				return fmt.Errorf("subscribe[%d].content: invalid regexp: %w", i, err)
			}
		}
	}
	if len(c.Keys) == 0 || len(c.Keys) > 2 {
		return fmt.Errorf("keys: want one signing key, or two while rotating, got %d", len(c.Keys))
	}
	if _, err := resolveKeys(c.Keys); err != nil {
		return err
	}
	if c.Timeout < 0 {
		return errors.New("timeout: must not be negative")
	}
	return nil
}

func resolveKeys(keys []string) ([]string, error) {
	out := make([]string, len(keys))
	for i, k := range keys {
		if name, ok := strings.CutPrefix(k, "env:"); ok {
			k = os.Getenv(name)
			if k == "" {
				return nil, fmt.Errorf("keys[%d]: environment variable %s is not set", i, name)
			}
		}
		if len(k) < 16 {
			return nil, fmt.Errorf("keys[%d]: a signing key needs at least 16 characters", i)
		}
		out[i] = k
	}
	return out, nil
}

// Builtin registers the webhook connector type: no default instance; each
// section with `type: webhook` is one.
var Builtin = connectors.Builtin{
	Type:    Type,
	Summary: "delivers subscribed events as signed CloudEvents JSON to a URL; the response may answer",
	Configure: func(name string, node *yaml.Node) (connectors.Instance, error) {
		var c Config
		if err := connectors.DecodeSection(node, &c); err != nil {
			return connectors.Instance{}, err
		}
		if err := c.Validate(); err != nil {
			return connectors.Instance{}, yamlpath.Annotate(node, err)
		}
		return connectors.Instance{
			Rules:   Rules(name, c.Subscribe),
			Options: c.Options(),
			New: func(_ context.Context, deps connectors.Deps) (connectors.Handler, error) {
				return New(name, c, deps.Logger)
			},
		}, nil
	},
}

// Rules are the routing rules of the subscriptions: one per entry, to name,
// as taps, so that the event is routed as if the webhook were not there.
func Rules(name string, subscribe []schemas.RouteMatch) []schemas.RouteRule {
	rules := make([]schemas.RouteRule, len(subscribe))
	for i, m := range subscribe {
		rules[i] = schemas.RouteRule{Name: fmt.Sprintf("webhook-%s-%d", name, i), Match: m, To: schemas.Strings{name}, Tap: true}
	}
	return rules
}

// Option adjusts a Connector.
type Option func(*Connector)

// WithClock sets the clock of the signature timestamps (tests).
func WithClock(now func() time.Time) Option { return func(c *Connector) { c.now = now } }

// Connector delivers events to one URL; a connectors.Handler, safe for concurrent use.
type Connector struct {
	name  string
	cfg   Config
	keys  []string
	r     *resty.Client
	log   *zap.Logger
	now   func() time.Time
	reply bool
}

// New returns the instance name configured by cfg.
func New(name string, cfg Config, log *zap.Logger, opts ...Option) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	keys, _ := resolveKeys(cfg.Keys)
	if log == nil {
		log = zap.NewNop()
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	c := &Connector{name: name, cfg: cfg, keys: keys, log: log, now: time.Now, reply: !cfg.IgnoreReply,
		// No retries here: the runner retries the event with backoff, then dead-letters it.
		r: resty.New().SetTimeout(timeout).SetResponseBodyLimit(1<<20).
			SetHeader("User-Agent", "wxhub-webhook/"+name).SetHeaders(cfg.Headers)}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Spec declares the connector to the runner.
func (c *Connector) Spec() connectors.Spec {
	return connectors.Spec{Name: c.name, Concurrency: c.cfg.Concurrency}
}

// Handle delivers ev. 2xx: done, the body (if any) is the answer; 408, 429,
// 5xx, timeouts and refused connections: retried; any other status:
// connectors.Permanent, so the event goes to the DLQ with the status.
func (c *Connector) Handle(ctx context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, connectors.Permanent(err)
	}
	attempt := 1
	if d, ok := connectors.DeliveryFrom(ctx); ok {
		attempt = d.Attempt
	}
	resp, err := c.r.R().SetContext(ctx).
		SetHeader("Content-Type", ContentType).
		SetHeader(HeaderSignature, Sign(c.keys, c.now(), body)).
		SetHeader(HeaderEventID, ev.ID).
		SetHeader(HeaderAttempt, strconv.Itoa(attempt)).
		SetBody(body).Post(c.cfg.URL)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("webhook %s: %w", c.name, err)
	}
	st := resp.StatusCode()
	switch {
	case st >= 200 && st < 300:
	case st == http.StatusRequestTimeout || st == http.StatusTooManyRequests || st >= 500:
		return nil, fmt.Errorf("webhook %s: HTTP %d: %s", c.name, st, snippet(resp.Body()))
	default:
		return nil, connectors.Permanent(fmt.Errorf("webhook %s: HTTP %d: %s", c.name, st, snippet(resp.Body())))
	}
	if !c.reply {
		return nil, nil
	}
	r, ok, err := ReplyFromBody(ev.Data.User, resp.Body())
	if err != nil {
		// The event was delivered: delivering it again would not fix the answer.
		c.log.Warn("webhook answer not sent", zap.String("event", ev.ID), zap.Error(err))
		return nil, nil
	}
	if !ok {
		return nil, nil
	}
	return []connectors.Reply{r}, nil
}

// ReplyFromBody reads a synchronous answer: a WeCom message body (with a
// msgtype; to the event's user unless it names recipients or a chatid) or
// {"text": "..."}. Empty, {} or {"text": ""}: no answer.
func ReplyFromBody(user string, body []byte) (connectors.Reply, bool, error) {
	var short struct {
		Text    *string `json:"text"`
		MsgType string  `json:"msgtype"`
	}
	if b := bytes.TrimSpace(body); len(b) > 0 && json.Unmarshal(b, &short) == nil && short.MsgType == "" && short.Text != nil {
		if strings.TrimSpace(*short.Text) == "" {
			return connectors.Reply{}, false, nil
		}
		return connectors.Text(user, *short.Text), true, nil
	}
	return connectors.WeComBody(user, body)
}

// Sign returns the signature header value for body at t with each key:
// "t=<unix>,v1=<hex HMAC-SHA256(key, "<unix>.<body>")>", one v1 per key.
func Sign(keys []string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	var b strings.Builder
	b.WriteString("t=" + ts)
	for _, k := range keys {
		b.WriteString(",v1=" + hex.EncodeToString(mac(k, ts, body)))
	}
	return b.String()
}

func mac(key, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// Errors of Verify.
var (
	ErrNoSignature = errors.New("webhook: missing or malformed " + HeaderSignature + " header")
	ErrTimestamp   = errors.New("webhook: timestamp outside the replay window")
	ErrSignature   = errors.New("webhook: no signature matches")
)

// Verify checks a delivery on the receiving side: r's Wxhub-Signature
// header against body (the raw request body, read before any decoding)
// with each of keys (during a rotation, the old and the new key), and its
// timestamp within window of now (a replayed old request is refused; a
// window of 0 means 5 minutes). It returns nil, ErrNoSignature, ErrTimestamp
// or ErrSignature. Receivers should also drop an event id they have
// already processed (Wxhub-Event-Id): a retried delivery is signed anew.
func Verify(r *http.Request, body []byte, keys []string, window time.Duration, now time.Time) error {
	if window <= 0 {
		window = 5 * time.Minute
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(r.Header.Get(HeaderSignature), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case !ok:
			continue
		case k == "t":
			ts = v
		case k == "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrNoSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > window || d < -window {
		return ErrTimestamp
	}
	for _, k := range keys {
		if k == "" {
			continue
		}
		want := mac(k, ts, body)
		for _, s := range sigs {
			if hmac.Equal(s, want) {
				return nil
			}
		}
	}
	return ErrSignature
}

func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if r := []rune(s); len(r) > 200 {
		return string(r[:200]) + "…"
	}
	return s
}
