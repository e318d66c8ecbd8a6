package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/connectors/webhook"
	"github.com/wxhub/wxhub/schemas"
)

const (
	key1 = "first-signing-key-0001"
	key2 = "second-signing-key-0002"
)

func node(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	return &n
}

func clickEvent(id, user string) *schemas.Event {
	return &schemas.Event{
		SpecVersion: schemas.SpecVersion, ID: id, Source: "wecom/helpdesk", Type: "wxhub.in.event.template_card_event",
		Time: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC), DataContentType: "application/json",
		Data: schemas.EventData{Channel: schemas.ChannelWeCom, App: "helpdesk", User: user, MsgType: "event",
			Event: "template_card_event", EventKey: "approve", TaskID: "deploy-42", ResponseCode: "rc1"},
	}
}

type delivery struct {
	header http.Header
	body   []byte
}

// receiver is a legacy system's endpoint; it checks the signature with its
// own HMAC code (not the package's) against the one key it knows.
func receiver(t *testing.T, key string, answer func(w http.ResponseWriter)) (*httptest.Server, func() []delivery) {
	var mu sync.Mutex
	var got []delivery
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, delivery{r.Header.Clone(), body})
		mu.Unlock()
		var ts string
		var sigs []string
		for _, p := range strings.Split(r.Header.Get("Wxhub-Signature"), ",") {
			if v, ok := strings.CutPrefix(p, "t="); ok {
				ts = v
			}
			if v, ok := strings.CutPrefix(p, "v1="); ok {
				sigs = append(sigs, v)
			}
		}
		m := hmac.New(sha256.New, []byte(key))
		m.Write([]byte(ts + "." + string(body)))
		want := hex.EncodeToString(m.Sum(nil))
		ok := false
		for _, s := range sigs {
			ok = ok || s == want
		}
		if !ok {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		answer(w)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []delivery { mu.Lock(); defer mu.Unlock(); return append([]delivery(nil), got...) }
}

func newConnector(t *testing.T, url string, keys []string, now time.Time) *webhook.Connector {
	t.Helper()
	c, err := webhook.New("legacy", webhook.Config{URL: url, Keys: keys, Subscribe: []schemas.RouteMatch{{MsgType: schemas.Strings{"event"}}}},
		zaptest.NewLogger(t), webhook.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSignatureIndependentlyVerified: the receiver knows only one of the
// two rotating keys, and checks the signature with its own HMAC code.
func TestSignatureIndependentlyVerified(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, known := range []string{key1, key2} {
		srv, got := receiver(t, known, func(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) })
		c := newConnector(t, srv.URL, []string{key1, key2}, now)
		if _, err := c.Handle(context.Background(), clickEvent("ev1", "zhangsan")); err != nil {
			t.Fatalf("receiver with key %s: %v", known, err)
		}
		d := got()[0]
		if sig := d.header.Get("Wxhub-Signature"); !strings.HasPrefix(sig, "t=1800000000,v1=") || strings.Count(sig, "v1=") != 2 {
			t.Fatalf("signature header %q", sig)
		}
		if ct := d.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/cloudevents+json") || d.header.Get("Wxhub-Event-Id") != "ev1" {
			t.Fatalf("headers %v", d.header)
		}
		var ce map[string]any
		if err := json.Unmarshal(d.body, &ce); err != nil {
			t.Fatal(err)
		}
		data, _ := ce["data"].(map[string]any)
		if ce["specversion"] != "1.0" || ce["id"] != "ev1" || ce["type"] != "wxhub.in.event.template_card_event" || ce["source"] != "wecom/helpdesk" ||
			data["task_id"] != "deploy-42" || data["event_key"] != "approve" {
			t.Fatalf("CloudEvent %s", d.body)
		}
	}
	// A key the receiver does not know: refused (401 → dead letter), so the check above can fail.
	srv, _ := receiver(t, key1, func(w http.ResponseWriter) {})
	c := newConnector(t, srv.URL, []string{"some-other-key-00000"}, now)
	if _, err := c.Handle(context.Background(), clickEvent("ev2", "zhangsan")); !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"ev1"}`)
	req := func(sig string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		if sig != "" {
			r.Header.Set(webhook.HeaderSignature, sig)
		}
		return r
	}
	tests := []struct {
		name    string
		sig     string
		body    []byte
		keys    []string
		at      time.Time
		wantErr error
	}{
		{"valid", webhook.Sign([]string{key1}, now, body), body, []string{key1}, now, nil},
		{"old key during rotation", webhook.Sign([]string{key1}, now, body), body, []string{key2, key1}, now, nil},
		{"signed with both, receiver has new", webhook.Sign([]string{key1, key2}, now, body), body, []string{key2}, now, nil},
		{"within window", webhook.Sign([]string{key1}, now.Add(-4*time.Minute), body), body, []string{key1}, now, nil},
		{"replayed after window", webhook.Sign([]string{key1}, now.Add(-6*time.Minute), body), body, []string{key1}, now, webhook.ErrTimestamp},
		{"from the future", webhook.Sign([]string{key1}, now.Add(6*time.Minute), body), body, []string{key1}, now, webhook.ErrTimestamp},
		{"wrong key", webhook.Sign([]string{key2}, now, body), body, []string{key1}, now, webhook.ErrSignature},
		{"tampered body", webhook.Sign([]string{key1}, now, body), []byte(`{"id":"ev2"}`), []string{key1}, now, webhook.ErrSignature},
		{"tampered timestamp", strings.Replace(webhook.Sign([]string{key1}, now, body), "t=1800000000", "t=1800000001", 1), body, []string{key1}, now, webhook.ErrSignature},
		{"missing", "", body, []string{key1}, now, webhook.ErrNoSignature},
		{"no v1", "t=1800000000", body, []string{key1}, now, webhook.ErrNoSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := webhook.Verify(req(tt.sig), tt.body, tt.keys, 5*time.Minute, tt.at); !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestSynchronousReply(t *testing.T) {
	tests := []struct {
		name, answer string
		wantKind     string
		want         string // "" = no reply
	}{
		{"text shorthand", `{"text": "已收到部署确认"}`, schemas.KindMessage, `"content":"已收到部署确认"`},
		{"wecom body", `{"msgtype":"markdown","markdown":{"content":"**ok**"}}`, schemas.KindMessage, `"touser":"zhangsan"`},
		{"wecom chat", `{"chatid":"ops","msgtype":"text","text":{"content":"x"}}`, schemas.KindAppChat, `"chatid":"ops"`},
		{"empty", ``, "", ""},
		{"empty object", `{}`, "", ""},
		{"not a message", `{"ok": true}`, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := receiver(t, key1, func(w http.ResponseWriter) { io.WriteString(w, tt.answer) })
			replies, err := newConnector(t, srv.URL, []string{key1}, time.Now()).Handle(context.Background(), clickEvent("ev1", "zhangsan"))
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if len(replies) != 0 {
					t.Fatalf("replies %v, want none", replies)
				}
				return
			}
			b, _ := json.Marshal(replies[0].Body)
			if len(replies) != 1 || replies[0].Kind != tt.wantKind || !strings.Contains(string(b), tt.want) {
				t.Fatalf("replies %v %s", replies, b)
			}
		})
	}
}

func TestStatusMapping(t *testing.T) {
	for _, tt := range []struct {
		status    int
		permanent bool
	}{{500, false}, {503, false}, {429, false}, {408, false}, {400, true}, {404, true}, {410, true}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(tt.status) }))
		_, err := newConnector(t, srv.URL, []string{key1}, time.Now()).Handle(context.Background(), clickEvent("ev1", "u"))
		srv.Close()
		if err == nil || connectors.IsPermanent(err) != tt.permanent {
			t.Errorf("HTTP %d: %v, want permanent=%v", tt.status, err, tt.permanent)
		}
	}
}

func TestConfig(t *testing.T) {
	tests := []struct{ name, given, wantErr string }{
		{"no url", "subscribe: [{msg_type: text}]\nkeys: [" + key1 + "]\n", "url: is required"},
		{"no subscription", "url: http://x\nkeys: [" + key1 + "]\n", "subscribe: at least one subscription is required"},
		{"bad regexp", "url: http://x\nkeys: [" + key1 + "]\nsubscribe:\n  - content: '(('\n", "subscribe[0].content: invalid regexp"},
		{"three keys", "url: http://x\nsubscribe: [{msg_type: text}]\nkeys: [" + key1 + ", " + key2 + ", " + key1 + "]\n", "keys: want one signing key, or two while rotating, got 3 (line 3)"},
		{"short key", "url: http://x\nsubscribe: [{msg_type: text}]\nkeys: [short]\n", "keys[0]: a signing key needs at least 16 characters (line 3)"},
		{"unknown key", "url: http://x\nsubscribe: [{msg_typ: text}]\nkeys: [" + key1 + "]\n", "subscribe[0].msg_typ: unknown key (line 2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := webhook.Builtin.Configure("legacy", node(t, tt.given))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want %q", err, tt.wantErr)
			}
		})
	}
	inst, err := webhook.Builtin.Configure("legacy", node(t, `url: http://x
keys: [`+key1+`]
subscribe:
  - event: [template_card_event]
    task_id: ["deploy-*"]
  - channel: mp
    event: [subscribe, unsubscribe]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(inst.Rules) != 2 || !inst.Rules[0].Tap || !inst.Rules[1].Tap || inst.Rules[1].To[0] != "legacy" ||
		inst.Rules[0].Match.TaskID[0] != "deploy-*" || inst.Rules[1].Match.Channel[0] != "mp" {
		t.Fatalf("rules %+v", inst.Rules)
	}
}

// TestRetriedThenDeadLettered runs the connector with the real runner: a
// receiver that fails twice is retried and its answer sent; one that
// always fails is dead-lettered after max_deliver tries.
func TestRetriedThenDeadLettered(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	healed := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(webhook.HeaderEventID)
		if err := webhook.Verify(r, mustRead(r), []string{key1}, time.Minute, time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		mu.Lock()
		calls[id]++
		n := calls[id]
		fail := (id == "poison" && !healed) || (id == "ok" && n < 3)
		mu.Unlock()
		if fail {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, `{"text":"第 `+r.Header.Get(webhook.HeaderAttempt)+` 次送达"}`)
	}))
	defer srv.Close()
	b := bustest.Open(t, bus.Config{Partitions: 4})
	inst, err := webhook.Builtin.Configure("legacy", node(t, "url: "+srv.URL+"\nkeys: ["+key1+"]\nsubscribe: [{msg_type: event}]\nmax_deliver: 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := inst.New(context.Background(), connectors.Deps{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	opts := inst.Options
	opts.Name, opts.Logger, opts.PollWait = "legacy", zaptest.NewLogger(t), 100*time.Millisecond
	opts.Backoff = connectors.ConstantBackoff(50 * time.Millisecond)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- connectors.Run(ctx, b, opts, h) }()
	defer func() { stop(); <-done }()
	for _, id := range []string{"ok", "poison"} {
		if _, err := b.PublishRoute(context.Background(), "legacy", 0, clickEvent(id, "user-"+id)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		letters, _ := b.ListDLQ(context.Background(), bus.DLQFilter{Stage: "connector:legacy"})
		var answered bool
		for _, o := range bustest.Outbound(t, b) {
			answered = answered || (o.Data.InReplyTo == "ok" && strings.Contains(string(o.Data.Body), "第 3 次送达"))
		}
		if len(letters) == 1 && answered {
			d := letters[0].Letter.Data
			if d.Attempts != 3 || !strings.Contains(d.Reason, "HTTP 503") {
				t.Fatalf("dead letter %+v", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead letters %d, answered %v", len(letters), answered)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	if calls["poison"] != 3 || calls["ok"] != 3 {
		t.Fatalf("calls %v", calls)
	}
	healed = true
	mu.Unlock()

	// The receiver is fixed: the dead letter replayed (wxhub dlq replay) is delivered.
	letters, err := b.ListDLQ(context.Background(), bus.DLQFilter{Stage: "connector:legacy"})
	if err != nil || len(letters) != 1 {
		t.Fatalf("dead letters %v %v", letters, err)
	}
	if err := b.ReplayDLQ(context.Background(), letters[0].Seq); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var answered bool
		for _, o := range bustest.Outbound(t, b) {
			answered = answered || (o.Data.InReplyTo == "poison" && strings.Contains(string(o.Data.Body), "第 1 次送达"))
		}
		if answered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the replayed event was not delivered")
		}
	}
}

func mustRead(r *http.Request) []byte {
	b, _ := io.ReadAll(r.Body)
	return b
}

func TestDryRun(t *testing.T) {
	section := "type: webhook\nurl: https://legacy.example/events\nkeys: [" + key1 + ", " + key2 + "]\nheaders: {X-Api-Key: k-secret}\nsubscribe:\n  - event: template_card_event\n    task_id: 'deploy-*'\n"
	res, err := webhook.DryRun(context.Background(), "legacy", node(t, section), clickEvent("ev1", "zhangsan"), []byte(`{"text":"已批准"}`))
	if err != nil {
		t.Fatal(err)
	}
	out := res.String()
	for _, want := range []string{"POST https://legacy.example/events", "Wxhub-Signature: t=", ",v1=****,v1=****", "X-Api-Key: ****",
		`"task_id": "deploy-42"`, `reply (message): {"msgtype":"text","text":{"content":"已批准"},"touser":"zhangsan"}`} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if !res.Matches || strings.Contains(out, key1) || strings.Contains(out, "k-secret") {
		t.Errorf("matches %v, or a secret shown:\n%s", res.Matches, out)
	}
	text := clickEvent("ev2", "zhangsan")
	text.Data.MsgType, text.Data.Event, text.Data.TaskID = "text", "", ""
	if res, err := webhook.DryRun(context.Background(), "legacy", node(t, section), text, nil); err != nil || res.Matches {
		t.Fatalf("text event: %v, matches %v", err, res.Matches)
	}
}
