package httpconn_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/connectors"
	httpconn "github.com/wxhub/wxhub/connectors/http"
	"github.com/wxhub/wxhub/schemas"
)

// runHub runs instance "svc" of section (URL replaced by url) with the SDK
// runner on an embedded NATS server, as the hub runs a built-in connector.
func runHub(t *testing.T, section, url string, maxDeliver int) *bus.Bus {
	t.Helper()
	b := bustest.Open(t, bus.Config{Partitions: 4})
	inst, err := httpconn.Builtin.Configure("svc", node(t, strings.ReplaceAll(section, "URL", url)))
	if err != nil {
		t.Fatal(err)
	}
	h, err := inst.New(context.Background(), deps(t))
	if err != nil {
		t.Fatal(err)
	}
	opts := inst.Options
	opts.Name, opts.MaxDeliver, opts.Logger = "svc", maxDeliver, zaptest.NewLogger(t)
	opts.Backoff, opts.PollWait = connectors.ConstantBackoff(100*time.Millisecond), 100*time.Millisecond
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- connectors.Run(ctx, b, opts, h) }()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not stop")
		}
	})
	return b
}

func route(t *testing.T, b *bus.Bus, ev *schemas.Event) {
	t.Helper()
	if _, err := b.PublishRoute(context.Background(), "svc", 0, ev); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds or 20 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func replyTexts(t *testing.T, b *bus.Bus, user string) []string {
	var out []string
	for _, o := range bustest.Outbound(t, b) {
		var body struct {
			ToUser string `json:"touser"`
			Text   struct{ Content string }
		}
		json.Unmarshal(o.Data.Body, &body)
		if body.ToUser == user {
			out = append(out, body.Text.Content)
		}
	}
	return out
}

// TestOrderPerUserUnderRetries: the first of a user's three events fails
// twice (503); the others wait for it, so the system sees and the user gets
// them in order, while another user is answered meanwhile.
func TestOrderPerUserUnderRetries(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	failures := map[string]int{"zhangsan:1": 2}
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request, body string) {
		key := r.URL.Query().Get("u") + ":" + r.URL.Query().Get("q")
		mu.Lock()
		calls = append(calls, key)
		fail := failures[key] > 0
		failures[key]--
		mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		jsonReply(200, map[string]string{"echo": key})(w, r, body)
	})
	b := runHub(t, "request:\n  url: 'URL/x?u={{ .user }}&q={{ .content | urlquery }}'\nreply:\n  template: '{{ .json.echo }}'\n", srv.URL, 5)
	for i, c := range []string{"1", "2", "3"} {
		route(t, b, textEvent("z"+c, "zhangsan", c))
		if i == 0 {
			route(t, b, textEvent("l1", "lisi", "1"))
		}
	}
	eventually(t, "three replies to zhangsan", func() bool { return len(replyTexts(t, b, "zhangsan")) == 3 })
	if got := replyTexts(t, b, "zhangsan"); !slices.Equal(got, []string{"zhangsan:1", "zhangsan:2", "zhangsan:3"}) {
		t.Fatalf("replies %v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	var z []string
	for _, c := range calls {
		if strings.HasPrefix(c, "zhangsan") {
			z = append(z, c)
		}
	}
	if !slices.Equal(z, []string{"zhangsan:1", "zhangsan:1", "zhangsan:1", "zhangsan:2", "zhangsan:3"}) {
		t.Fatalf("calls of zhangsan %v", z)
	}
	if got := replyTexts(t, b, "lisi"); len(got) != 1 {
		t.Fatalf("lisi's replies %v", got)
	}
}

// TestDeadLetters: an always-failing call is dead-lettered after max_deliver
// tries with the status as the reason; a dropped one at once.
func TestDeadLetters(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request, _ string) {
		q := r.URL.Query().Get("q")
		mu.Lock()
		calls[q]++
		mu.Unlock()
		if q == "bad" {
			http.Error(w, "bad request: no such field", http.StatusBadRequest)
			return
		}
		http.Error(w, "database down", http.StatusInternalServerError)
	})
	b := runHub(t, "request:\n  url: 'URL/x?q={{ .content }}'\nmax_deliver: 3\n", srv.URL, 3)
	route(t, b, textEvent("poison", "zhangsan", "poison"))
	route(t, b, textEvent("bad", "lisi", "bad"))
	var letters []bus.DLQEntry
	eventually(t, "two dead letters", func() bool {
		var err error
		letters, err = b.ListDLQ(context.Background(), bus.DLQFilter{Stage: "connector:svc"})
		return err == nil && len(letters) == 2
	})
	byID := map[string]schemas.DeadLetterData{}
	for _, l := range letters {
		var ev schemas.Event
		json.Unmarshal(l.Letter.Data.Original, &ev)
		byID[ev.ID] = l.Letter.Data
	}
	if d := byID["poison"]; d.Attempts != 3 || !strings.Contains(d.Reason, "HTTP 500: database down") {
		t.Errorf("poison: %+v", d)
	}
	if d := byID["bad"]; d.Attempts != 1 || !strings.Contains(d.Reason, "HTTP 400: bad request") {
		t.Errorf("bad: %+v", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["poison"] != 3 || calls["bad"] != 1 {
		t.Errorf("calls %v", calls)
	}
}
