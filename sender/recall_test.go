package sender_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/sender"
	"github.com/wxhub/wxhub/wecom/sim"
)

// publishAPI publishes a text pushed through the push API by key "erp".
func (h *harness) publishAPI(id, touser, content string) {
	h.t.Helper()
	body, _ := json.Marshal(map[string]any{"touser": touser, "msgtype": "text", "text": map[string]string{"content": content}})
	out := schemas.Outbound{
		SpecVersion: schemas.SpecVersion, ID: id, Source: "api/erp", Type: "wxhub.out.message",
		Time: time.Now(), DataContentType: "application/json",
		Data: schemas.OutboundData{App: testApp, Kind: schemas.KindMessage, Body: body},
	}
	if _, err := h.bus.PublishJSON(context.Background(), bus.OutSubject(testApp), id, schemas.SchemaOutbound, out); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) markCancelled(id string) {
	h.t.Helper()
	kv, err := h.bus.KV(context.Background(), bus.BucketStatus)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := kv.Create(context.Background(), bus.CancelKey(id), []byte("test")); err != nil {
		h.t.Fatal(err)
	}
}

// A message deferred by quiet hours and cancelled meanwhile is never sent.
func TestSimCancelledWhileDeferredIsNeverSent(t *testing.T) {
	clock := sender.NewManualClock(time.Date(2025, 3, 3, 7, 59, 0, 0, shanghai))
	h := newHarness(t, harnessOpts{users: 1, clock: clock, prepare: func(h *harness) {
		kv, err := h.bus.KV(context.Background(), bus.BucketDND)
		if err != nil {
			t.Fatal(err)
		}
		_, w, _ := sender.ParseDNDCommand("免打扰 22:00-08:00")
		if err := sender.NewDNDStore(kv).Set(context.Background(), "u0", w, clock.Now()); err != nil {
			t.Fatal(err)
		}
	}})
	h.publishAPI("c-1", "u0", "good morning")
	waitFor(t, 10*time.Second, "deferred", func() bool { return h.status("c-1").Status == schemas.StatusDeferred })
	h.markCancelled("c-1")
	clock.Set(time.Date(2025, 3, 3, 8, 0, 0, 0, shanghai))
	waitFor(t, 10*time.Second, "cancelled", func() bool { return h.status("c-1").Status == schemas.StatusCancelled })
	h.publishAPI("c-2", "u0", "probe")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.Content == "probe" }); err != nil {
		t.Fatal(err)
	}
	for _, m := range h.sim.SentTo("u0") {
		if m.Content == "good morning" {
			t.Fatal("cancelled message was sent")
		}
	}
}

// A cancel that lands while WeCom is taking the message makes the sender
// recall it at once; the status ends "recalled".
func TestSimCancelDuringSendRecalls(t *testing.T) {
	var h *harness
	h = newHarness(t, harnessOpts{users: 1, front: func(s http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/cgi-bin/message/send" {
				h.markCancelled("race-1") // the client's DELETE arrives mid-call
			}
			s.ServeHTTP(w, r)
		})
	}})
	h.publishAPI("race-1", "u0", "oops")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	m, err := h.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.Content == "oops" })
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "recall at WeCom", func() bool { _, ok := h.sim.Recalled(m.MsgID); return ok })
	waitFor(t, 10*time.Second, "recalled status", func() bool { return h.status("race-1").Status == schemas.StatusRecalled })
	if st := h.status("race-1"); st.WeComMsgID != m.MsgID || !strings.HasPrefix(st.ToUser, "u0") {
		t.Fatalf("status = %+v", st)
	}
}
