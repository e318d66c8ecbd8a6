package httpconn

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/schemas"
)

// SampleResponse is a response given to a dry run instead of calling the system.
type SampleResponse struct {
	Status int // default 200
	Header http.Header
	Body   []byte
}

// DryRunResult is what a dry run shows: the request that would be made and,
// given a sample response, its outcome and the replies that would be sent.
type DryRunResult struct {
	Request Prepared `json:"request"`
	// Outcome is success, retry or drop; empty without a sample response.
	Outcome string `json:"outcome,omitempty"`
	// Reason for retry or drop (what the DLQ would record).
	Reason string `json:"reason,omitempty"`
	// Replies are the outbound messages that would be queued on success.
	Replies []DryRunReply `json:"replies,omitempty"`
}

// DryRunReply is one reply as the runner would publish it.
type DryRunReply struct {
	App      string          `json:"app"`
	Kind     string          `json:"kind"`
	Priority string          `json:"priority,omitempty"`
	Body     json.RawMessage `json:"body"`
}

// DryRun shows what instance name, configured by node (its section, with or
// without `type: http`), would do with ev, without sending anything: the
// request with its secrets masked, and, when resp is not nil, the outcome
// and the replies resp would produce. OAuth2 tokens are not fetched.
func DryRun(ctx context.Context, name string, node *yaml.Node, ev *schemas.Event, resp *SampleResponse) (DryRunResult, error) {
	cfg, err := Decode(withoutType(node))
	if err != nil {
		return DryRunResult{}, err
	}
	c, err := New(name, cfg, nil)
	if err != nil {
		return DryRunResult{}, err
	}
	return c.DryRun(ctx, ev, resp)
}

// DryRun is the package's DryRun for a built connector.
func (c *Connector) DryRun(_ context.Context, ev *schemas.Event, resp *SampleResponse) (DryRunResult, error) {
	data := c.templateData(ev)
	p, err := c.prepare(data)
	if err != nil {
		return DryRunResult{}, err
	}
	if c.tokens != nil {
		p.Header.Set("Authorization", "Bearer <token from "+c.k.cfg.Auth.TokenURL+">")
	}
	res := DryRunResult{Request: *p}
	res.Request.URL = maskURL(p.URL)
	res.Request.Header = mask(p.Header, c.k.cfg.Auth.Header)
	if resp == nil {
		return res, nil
	}
	ans := &Answer{Status: resp.Status, Header: resp.Header, Body: resp.Body}
	if ans.Status == 0 {
		ans.Status = http.StatusOK
	}
	rd := c.responseData(data, ans)
	if res.Outcome, res.Reason, err = c.classify(rd); err != nil {
		return res, err
	}
	if res.Outcome != OutcomeSuccess {
		return res, nil
	}
	replies, err := c.replies(ev, rd, ans)
	if err != nil {
		return res, err
	}
	for _, r := range replies {
		body, err := json.Marshal(r.Body)
		if err != nil {
			return res, err
		}
		res.Replies = append(res.Replies, DryRunReply{
			App: cmpOr(r.App, ev.Data.App), Kind: cmpOr(r.Kind, schemas.KindMessage),
			Priority: cmpOr(r.Priority, schemas.PriorityNormal), Body: body,
		})
	}
	return res, nil
}

// String prints the result for a terminal.
func (r DryRunResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", r.Request.Method, r.Request.URL)
	names := make([]string, 0, len(r.Request.Header))
	for k := range r.Request.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(r.Request.Header[k], ", "))
	}
	if r.Request.Body != "" {
		fmt.Fprintf(&b, "\n%s\n", r.Request.Body)
	}
	if r.Outcome == "" {
		return b.String()
	}
	fmt.Fprintf(&b, "\noutcome: %s", r.Outcome)
	if r.Reason != "" {
		fmt.Fprintf(&b, " (%s)", r.Reason)
	}
	b.WriteString("\n")
	if r.Outcome == OutcomeSuccess && len(r.Replies) == 0 {
		b.WriteString("no reply\n")
	}
	for _, rep := range r.Replies {
		fmt.Fprintf(&b, "reply via app %s (%s, %s): %s\n", rep.App, rep.Kind, rep.Priority, rep.Body)
	}
	return b.String()
}

// sensitive headers are shown masked in a dry run.
var sensitive = []string{"authorization", "proxy-authorization", "cookie", "token", "key", "secret", "password", "signature"}

func mask(h http.Header, extra string) http.Header {
	out := http.Header{}
	for k, vs := range h {
		lk := strings.ToLower(k)
		hide := extra != "" && strings.EqualFold(k, extra)
		for _, s := range sensitive {
			hide = hide || strings.Contains(lk, s)
		}
		for _, v := range vs {
			if hide && !strings.HasPrefix(v, "Bearer <token from") {
				v = maskValue(v)
			}
			out.Add(k, v)
		}
	}
	return out
}

// maskValue keeps a scheme word ("Bearer", "Basic", "sha256=") and hides the rest.
func maskValue(v string) string {
	if scheme, _, ok := strings.Cut(v, " "); ok {
		return scheme + " ****"
	}
	if pre, _, ok := strings.Cut(v, "="); ok && len(pre) < 10 {
		return pre + "=****"
	}
	return "****"
}

// maskURL hides query values whose names look like secrets, and user info.
func maskURL(u string) string {
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i && !strings.ContainsAny(u[j+3:i], "/?#") {
			u = u[:j+3] + "****@" + u[i+1:]
		}
	}
	base, q, ok := strings.Cut(u, "?")
	if !ok {
		return u
	}
	parts := strings.Split(q, "&")
	for i, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		lk := strings.ToLower(k)
		for _, s := range sensitive {
			if strings.Contains(lk, s) {
				parts[i] = k + "=****"
			}
		}
	}
	return base + "?" + strings.Join(parts, "&")
}

// withoutType removes a `type:` key, as the hub does before Configure.
func withoutType(node *yaml.Node) *yaml.Node {
	n := node
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return node
	}
	c := *n
	c.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "type" {
			continue
		}
		c.Content = append(c.Content, n.Content[i], n.Content[i+1])
	}
	return &c
}
