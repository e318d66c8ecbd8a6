package httpconn_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxhub/wxhub/connectors"
	httpconn "github.com/wxhub/wxhub/connectors/http"
	"github.com/wxhub/wxhub/schemas"
)

func TestAuthBearerAndBasic(t *testing.T) {
	tests := []struct {
		name, auth, want string
	}{
		{"bearer", "kind: bearer\n  token: s3cret", "Bearer s3cret"},
		{"basic", "kind: basic\n  username: alice\n  password: 'p:w'", "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:p:w"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, jsonReply(200, map[string]string{"ok": "yes"}))
			c := connector(t, "request:\n  url: URL/x\nauth:\n  "+tt.auth+"\nreply:\n  template: '{{ .json.ok }}'\n", srv.URL)
			r := one(t)(c.Handle(context.Background(), textEvent("e1", "zhangsan", "hi")))
			if got := srv.requests()[0].Header.Get("Authorization"); got != tt.want {
				t.Fatalf("Authorization %q, want %q", got, tt.want)
			}
			if !strings.Contains(replyJSON(t, r), `"content":"yes"`) {
				t.Fatalf("reply %s", replyJSON(t, r))
			}
		})
	}
}

// TestAuthHMAC checks the signature with an HMAC computed here, by hand.
func TestAuthHMAC(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	const secret = "hmac-key"
	var verified atomic.Bool
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request, body string) {
		ts := r.Header.Get("X-Ts")
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(ts + "." + body))
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		if ts != strconv.FormatInt(now.Unix(), 10) || !hmac.Equal([]byte(r.Header.Get("X-Sig")), []byte(want)) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		verified.Store(true)
		w.WriteHeader(http.StatusNoContent)
	})
	c := connector(t, `request:
  method: POST
  url: URL/hook
  body: '{"user": {{ json .user }}, "text": {{ json .content }}}'
auth:
  kind: hmac
  secret: hmac-key
  header: X-Sig
  timestamp_header: X-Ts
`, srv.URL, httpconn.WithClock(func() time.Time { return now }))
	replies, err := c.Handle(context.Background(), textEvent("e1", "zhangsan", `say "hi"`))
	if err != nil || len(replies) != 0 || !verified.Load() {
		t.Fatalf("replies %v, err %v, verified %v", replies, err, verified.Load())
	}
	req := srv.requests()[0]
	if req.Body != `{"user": "zhangsan", "text": "say \"hi\""}` || req.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("request %+v", req)
	}
	// A wrong secret is refused (401 → drop by default): the check above can fail.
	bad := connector(t, "request:\n  method: POST\n  url: URL/hook\n  body: x\nauth:\n  kind: hmac\n  secret: other\n  header: X-Sig\n  timestamp_header: X-Ts\n",
		srv.URL, httpconn.WithClock(func() time.Time { return now }))
	if _, err := bad.Handle(context.Background(), textEvent("e2", "zhangsan", "x")); !connectors.IsPermanent(err) {
		t.Fatalf("wrong secret: %v, want a drop", err)
	}
}

// tokenServer is an OAuth2 token endpoint issuing t1, t2, ... valid for ttl.
type tokenServer struct {
	*recorder
	issued atomic.Int32
}

func newTokenServer(t *testing.T, ttl int) *tokenServer {
	ts := &tokenServer{}
	ts.recorder = newRecorder(t, func(w http.ResponseWriter, r *http.Request, body string) {
		id, secret, ok := r.BasicAuth()
		// RFC 6749 2.3.1: both are form-encoded inside basic auth.
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		if !ok || id != "cid" || secret != "c s" || !strings.Contains(body, "grant_type=client_credentials") || !strings.Contains(body, "scope=tickets.read") {
			jsonReply(401, map[string]string{"error": "invalid_client"})(w, r, body)
			return
		}
		n := ts.issued.Add(1)
		jsonReply(200, map[string]any{"access_token": fmt.Sprintf("t%d", n), "token_type": "Bearer", "expires_in": ttl})(w, r, body)
	})
	return ts
}

func TestAuthOAuth2CachedAndRefreshed(t *testing.T) {
	tokens := newTokenServer(t, 3600)
	var mu sync.Mutex
	revoked := map[string]bool{}
	api := newRecorder(t, func(w http.ResponseWriter, r *http.Request, body string) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		mu.Lock()
		bad := revoked[tok]
		mu.Unlock()
		if bad || !strings.HasPrefix(tok, "t") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		jsonReply(200, map[string]string{"token": tok})(w, r, body)
	})
	var clock atomic.Int64
	clock.Store(time.Unix(1_800_000_000, 0).Unix())
	now := func() time.Time { return time.Unix(clock.Load(), 0) }
	c := connector(t, "request:\n  url: URL/api\nauth:\n  kind: oauth2\n  token_url: "+tokens.URL+"/token\n  client_id: cid\n  client_secret: c s\n  scopes: [tickets.read]\nreply:\n  template: '{{ .json.token }}'\n",
		api.URL, httpconn.WithClock(now))
	call := func() string {
		t.Helper()
		return replyJSON(t, one(t)(c.Handle(context.Background(), textEvent("e", "u", "x"))))
	}
	for i := 0; i < 3; i++ {
		if got := call(); !strings.Contains(got, `"t1"`) {
			t.Fatalf("call %d: %s", i, got)
		}
	}
	if n := tokens.issued.Load(); n != 1 {
		t.Fatalf("%d token fetches for 3 calls, want 1 (cached)", n)
	}
	clock.Add(3600) // expired
	if got := call(); !strings.Contains(got, `"t2"`) || tokens.issued.Load() != 2 {
		t.Fatalf("after expiry: %s, %d fetches", got, tokens.issued.Load())
	}
	mu.Lock()
	revoked["t2"] = true
	mu.Unlock()
	if got := call(); !strings.Contains(got, `"t3"`) || tokens.issued.Load() != 3 {
		t.Fatalf("after 401: %s, %d fetches", got, tokens.issued.Load())
	}
	// Bad client credentials: not fixed by retrying.
	bad := connector(t, "request:\n  url: URL/api\nauth:\n  kind: oauth2\n  token_url: "+tokens.URL+"/token\n  client_id: cid\n  client_secret: wrong\n", api.URL)
	if _, err := bad.Handle(context.Background(), textEvent("e", "u", "x")); !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("bad client: %v", err)
	}
}

func TestReplyTemplates(t *testing.T) {
	ticket := map[string]any{"id": 77, "title": "打印机卡纸", "status": "open", "assignee": nil}
	tests := []struct {
		name, reply string
		answer      any
		wantKind    string
		want        []string
	}{
		{"text", "template: '工单 {{ .json.id }}：{{ .json.title }}，处理人 {{ .json.assignee | default \"未分配\" }}'", ticket, schemas.KindMessage,
			[]string{`"msgtype":"text"`, `"content":"工单 77：打印机卡纸，处理人 未分配"`, `"touser":"zhangsan"`}},
		{"markdown", "kind: markdown\n  template: '**{{ .json.title }}** `{{ .json.status | upper }}`'", ticket, schemas.KindMessage,
			[]string{`"msgtype":"markdown"`, "**打印机卡纸** `OPEN`"}},
		{"template card", "kind: template_card\n  template: '{\"card_type\":\"text_notice\",\"main_title\":{\"title\":{{ json .json.title }}},\"task_id\":\"ticket-{{ .json.id }}-{{ index .match 1 }}\"}'", ticket, schemas.KindMessage,
			[]string{`"msgtype":"template_card"`, `"card_type":"text_notice"`, `"title":"打印机卡纸"`, `"task_id":"ticket-77-77"`}},
		{"wecom body", "kind: wecom", map[string]any{"msgtype": "text", "text": map[string]string{"content": "from system"}, "agentid": 5}, schemas.KindMessage,
			[]string{`"touser":"zhangsan"`, `"content":"from system"`}},
		{"wecom chat", "kind: wecom", map[string]any{"chatid": "ops", "msgtype": "text", "text": map[string]string{"content": "c"}}, schemas.KindAppChat,
			[]string{`"chatid":"ops"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, jsonReply(200, tt.answer))
			c := connector(t, "match:\n  content: '^工单\\s*(\\d+)'\nrequest:\n  url: 'URL/tickets/{{ index .match 1 }}'\nreply:\n  "+tt.reply+"\n", srv.URL)
			r := one(t)(c.Handle(context.Background(), textEvent("e1", "zhangsan", "工单 77")))
			if srv.requests()[0].Path != "/tickets/77" {
				t.Fatalf("path %s", srv.requests()[0].Path)
			}
			got := replyJSON(t, r)
			if r.Kind != tt.wantKind {
				t.Errorf("kind %q, want %q", r.Kind, tt.wantKind)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("reply %s lacks %s", got, w)
				}
			}
			if strings.Contains(got, "agentid") {
				t.Errorf("reply %s keeps agentid", got)
			}
		})
	}
}

func TestResponseMapping(t *testing.T) {
	const section = `request:
  url: URL/x
response:
  success: ["2xx", "404"]
  retry: ["429", "500-599"]
  drop: ["400"]
  drop_if: '{{ eq (int .json.errcode) 40001 }}'
  retry_if: '{{ eq (int .json.errcode) -1 }}'
reply:
  template: '{{ if eq .status 404 }}没有{{ else }}ok {{ .json.errcode }}{{ end }}'
`
	tests := []struct {
		name    string
		status  int
		body    any
		want    string // reply content, or "retry" / "drop"
		wantMsg string
	}{
		{"2xx success", 200, map[string]int{"errcode": 0}, "ok 0", ""},
		{"404 listed as success", 404, map[string]string{}, "没有", ""},
		{"body condition drop", 200, map[string]int{"errcode": 40001}, "drop", "response.drop_if holds: HTTP 200"},
		{"body condition retry", 200, map[string]int{"errcode": -1}, "retry", "response.retry_if holds"},
		{"429 retry", 429, map[string]string{}, "retry", "HTTP 429"},
		{"503 retry", 503, map[string]string{"error": "down"}, "retry", `HTTP 503: {"error":"down"}`},
		{"400 drop", 400, map[string]string{}, "drop", "HTTP 400"},
		{"unlisted 418 drop", 418, map[string]string{}, "drop", "HTTP 418"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, jsonReply(tt.status, tt.body))
			c := connector(t, section, srv.URL)
			replies, err := c.Handle(context.Background(), textEvent("e1", "u", "x"))
			switch tt.want {
			case "retry":
				if err == nil || connectors.IsPermanent(err) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("got %v, want a retry with %q", err, tt.wantMsg)
				}
			case "drop":
				if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("got %v, want a drop with %q", err, tt.wantMsg)
				}
			default:
				if got := replyJSON(t, oneReply(t, replies, err)); !strings.Contains(got, tt.want) {
					t.Fatalf("reply %s, want %q", got, tt.want)
				}
			}
		})
	}
	// A system that is not there is retried; the error keeps the URL's query (maybe a key) out.
	c := connector(t, strings.Replace(section, "URL/x", "URL/x?key=s3cret", 1), "http://127.0.0.1:1")
	if _, err := c.Handle(context.Background(), textEvent("e1", "u", "x")); err == nil || connectors.IsPermanent(err) || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("refused connection: %v, want a retry without the key", err)
	}
}

func TestTimeoutRetries(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request, _ string) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	c := connector(t, "request:\n  url: URL/slow\ntimeout: 200ms\n", srv.URL)
	start := time.Now()
	_, err := c.Handle(context.Background(), textEvent("e1", "u", "x"))
	if err == nil || connectors.IsPermanent(err) {
		t.Fatalf("timeout: %v, want a retry", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s, the timeout is 200ms", d)
	}
}

func TestRenderedURLNotAURL(t *testing.T) {
	c := connector(t, "request:\n  url: '{{ .content }}'\n", "")
	if _, err := c.Handle(context.Background(), textEvent("e1", "u", "not a url")); !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "request.url: rendered") {
		t.Fatalf("got %v, want a drop naming request.url", err)
	}
}
