package sender_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/sender"
)

// Ten concurrent sends all answered 45009 at once are one frequency event: the
// app pauses for the base pause, not for ten doublings (the old count of
// "consecutive" answers grew it from 0.67 s to 222 s). Then everything goes.
func TestConcurrent45009AnswersCountOnce(t *testing.T) {
	const burst = 10
	clock := sender.NewManualClock(time.Date(2025, 3, 3, 10, 0, 0, 0, shanghai))
	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	arrived, release := 0, make(chan struct{})
	h := newHarness(t, harnessOpts{
		users: burst, clock: clock,
		opts: []sender.Option{sender.WithRegisterer(reg)},
		// Base 100ms, Max 1s: ten doublings would hit the 1s cap.
		front: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !strings.Contains(r.URL.Path, "/message/send") {
					next.ServeHTTP(w, r)
					return
				}
				mu.Lock()
				arrived++
				n := arrived
				if n == burst {
					close(release)
				}
				mu.Unlock()
				if n > burst {
					next.ServeHTTP(w, r)
					return
				}
				// Hold the first ten until all are in flight: a true burst.
				select {
				case <-release:
				case <-time.After(20 * time.Second):
				}
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(map[string]any{"errcode": 45009, "errmsg": "api freq out of limit"})
			})
		},
	})
	for i := range burst {
		h.publish(fmt.Sprintf("b%d", i), "normal", fmt.Sprintf("u%d", i), "hello")
	}
	select {
	case <-release:
	case <-time.After(20 * time.Second):
		t.Fatalf("only %d sends were in flight at once", arrived)
	}
	waitMetric(t, reg, "wxhub_sender_deferrals_total", L{"app": testApp, "reason": "frequency"}, burst)
	if v := metric(t, reg, "wxhub_sender_pauses_total", L{"app": testApp}); v != 1 {
		t.Fatalf("pauses = %v, want 1 for one burst", v)
	}
	until := metric(t, reg, "wxhub_sender_paused_until_seconds", L{"app": testApp})
	pause := time.Duration((until - float64(clock.Now().UnixMilli())/1000) * float64(time.Second))
	if pause <= 0 || pause > 100*time.Millisecond {
		t.Fatalf("pause %s after one burst, want the base pause (100ms)", pause)
	}
	for i := 0; ; i++ {
		done := 0
		for j := range burst {
			if h.status(fmt.Sprintf("b%d", j)).Status == schemas.StatusSent {
				done++
			}
		}
		if done == burst {
			break
		}
		if i > 2000 {
			t.Fatalf("%d of %d sent after the pause", done, burst)
		}
		clock.Advance(50 * time.Millisecond)
		time.Sleep(5 * time.Millisecond)
	}
	if v := metric(t, reg, "wxhub_sender_pauses_total", L{"app": testApp}); v != 1 {
		t.Fatalf("pauses = %v after recovery, want 1", v)
	}
}

// The sender's status records keep the pushing client, so the gateway can
// still answer the status to that client only (and not to another key).
func TestStatusKeepsThePushingClient(t *testing.T) {
	h := newHarness(t, harnessOpts{users: 1})
	body, _ := json.Marshal(map[string]any{"touser": "u0", "msgtype": "text", "text": map[string]string{"content": "hi"}})
	out := schemas.Outbound{
		SpecVersion: schemas.SpecVersion, ID: "pushed-by-erp", Source: "api/erp", Type: "wxhub.out.message",
		Time: time.Now(), DataContentType: "application/json",
		Data: schemas.OutboundData{App: testApp, Kind: schemas.KindMessage, Body: body},
	}
	if _, err := h.bus.PublishJSON(testCtx(t), bus.OutSubject(testApp), out.ID, schemas.SchemaOutbound, out); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "sent", func() bool { return h.status(out.ID).Status == schemas.StatusSent })
	if st := h.status(out.ID); st.Client != "erp" {
		t.Fatalf("status client %q, want erp", st.Client)
	}
}
