package sim_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxhub/wxhub/wecom/sim"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2025, 3, 3, 10, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t     *testing.T
	s     *sim.Server
	clock *fakeClock
	base  string
}

// newEnv starts the demo corp on a free port with a fake clock; mod may change the config.
func newEnv(t *testing.T, mod func(*sim.Config)) *env {
	t.Helper()
	cfg := sim.DemoConfig()
	cfg.GatewayURL = ""
	if mod != nil {
		mod(&cfg)
	}
	clk := newClock()
	s, err := sim.New(cfg, sim.WithClock(clk))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &env{t: t, s: s, clock: clk, base: s.URL()}
}

// call does one API call and decodes the JSON answer.
func (e *env) call(method, path string, body any) map[string]any {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		r = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, e.base+path, r)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		e.t.Fatalf("%s %s: HTTP %d, decode: %v", method, path, resp.StatusCode, err)
	}
	return out
}

func (e *env) token() string {
	e.t.Helper()
	out := e.call("GET", "/cgi-bin/gettoken?corpid=ww0123456789abcdef&corpsecret=helpdesk-demo-secret", nil)
	tok, _ := out["access_token"].(string)
	if tok == "" {
		e.t.Fatalf("gettoken: %v", out)
	}
	return tok
}

func (e *env) send(tok string, body any) map[string]any {
	e.t.Helper()
	return e.call("POST", "/cgi-bin/message/send?access_token="+tok, body)
}

func code(m map[string]any) int {
	f, _ := m["errcode"].(float64)
	return int(f)
}

func text(to, content string) map[string]any {
	return map[string]any{"touser": to, "msgtype": "text", "agentid": 1000002, "text": map[string]any{"content": content}}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
