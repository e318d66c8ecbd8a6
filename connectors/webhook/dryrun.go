package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

// DryRunResult is what a delivery would be, and the answer a sample
// response body would give.
type DryRunResult struct {
	URL    string      `json:"url"`
	Header http.Header `json:"headers"`
	Body   string      `json:"body"`
	// Matches tells whether the subscriptions select the event at all
	// (checked on msg type, event, app, channel, event key and task id).
	Matches bool `json:"matches"`
	// Reply is the answer's WeCom body, when a sample response gave one.
	Reply json.RawMessage `json:"reply,omitempty"`
	Kind  string          `json:"kind,omitempty"`
}

// DryRun shows what instance name (its section, with or without `type:
// webhook`) would POST for ev, with the signature's values masked, and,
// when response is not nil, the answer that response body would send. It
// sends nothing.
func DryRun(_ context.Context, name string, node *yaml.Node, ev *schemas.Event, response []byte) (DryRunResult, error) {
	var c Config
	if err := connectors.DecodeSection(withoutType(node), &c); err != nil {
		return DryRunResult{}, err
	}
	if err := c.Validate(); err != nil {
		return DryRunResult{}, err
	}
	body, err := json.MarshalIndent(ev, "", "  ")
	if err != nil {
		return DryRunResult{}, err
	}
	h := http.Header{}
	for k := range c.Headers {
		h.Set(k, "****") // static headers are usually the receiver's API keys
	}
	h.Set("Content-Type", ContentType)
	h.Set(HeaderSignature, fmt.Sprintf("t=%d%s", time.Now().Unix(), strings.Repeat(",v1=****", len(c.Keys))))
	h.Set(HeaderEventID, ev.ID)
	h.Set(HeaderAttempt, "1")
	res := DryRunResult{URL: c.URL, Header: h, Body: string(body), Matches: subscribed(c.Subscribe, ev)}
	if response != nil && !c.IgnoreReply {
		r, ok, err := ReplyFromBody(ev.Data.User, response)
		if err != nil {
			return res, fmt.Errorf("sample response: %w", err)
		}
		if ok {
			res.Kind = r.Kind
			if res.Reply, err = json.Marshal(r.Body); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// String prints the result for a terminal.
func (r DryRunResult) String() string {
	var b strings.Builder
	if !r.Matches {
		b.WriteString("(the subscriptions do not select this event)\n")
	}
	fmt.Fprintf(&b, "POST %s\n", r.URL)
	for _, k := range []string{"Content-Type", HeaderSignature, HeaderEventID, HeaderAttempt} {
		fmt.Fprintf(&b, "%s: %s\n", k, r.Header.Get(k))
	}
	for k := range r.Header {
		switch k {
		case "Content-Type", HeaderSignature, HeaderEventID, HeaderAttempt:
		default:
			fmt.Fprintf(&b, "%s: %s\n", k, r.Header.Get(k))
		}
	}
	fmt.Fprintf(&b, "\n%s\n", r.Body)
	if r.Reply != nil {
		fmt.Fprintf(&b, "\nreply (%s): %s\n", r.Kind, r.Reply)
	}
	return b.String()
}

// subscribed approximates the router's match for a dry run (no regexps,
// keywords or users).
func subscribed(subs []schemas.RouteMatch, ev *schemas.Event) bool {
	d := ev.Data
	in := func(l schemas.Strings, v string, prefix bool) bool {
		if len(l) == 0 {
			return true
		}
		for _, s := range l {
			if p, ok := strings.CutSuffix(s, "*"); prefix && ok && strings.HasPrefix(v, p) || strings.EqualFold(s, v) {
				return true
			}
		}
		return false
	}
	for _, m := range subs {
		if in(m.Channel, d.Channel, false) && in(m.App, d.App, false) && in(m.MsgType, d.MsgType, false) &&
			in(m.Event, d.Event, false) && in(m.EventKey, d.EventKey, true) && in(m.TaskID, d.TaskID, true) {
			return true
		}
	}
	return false
}

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
		if n.Content[i].Value != "type" {
			c.Content = append(c.Content, n.Content[i], n.Content[i+1])
		}
	}
	return &c
}
