package sender_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/sender"
	"github.com/wxhub/wxhub/wecom/sim"
)

// The same answer twice reaches the user twice, and a retry after an answer
// lost on the way back is shown once, whether WeCom's duplicate check compares
// with every earlier message or only with flagged ones.
func TestDuplicateCheckNeverSwallowsAnswers(t *testing.T) {
	for _, scope := range []string{sim.DuplicateCheckAll, sim.DuplicateCheckFlagged} {
		t.Run(scope, func(t *testing.T) {
			clock := sender.NewManualClock(time.Date(2025, 3, 3, 10, 0, 0, 0, shanghai))
			var lose atomic.Int32
			lose.Store(1)
			front := func(api http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					body, _ := io.ReadAll(r.Body)
					r.Body = io.NopCloser(bytes.NewReader(body))
					if r.URL.Path == "/cgi-bin/message/send" && bytes.Contains(body, []byte("lost on the way")) && lose.Add(-1) >= 0 {
						api.ServeHTTP(httptest.NewRecorder(), r) // WeCom delivers it...
						w.WriteHeader(http.StatusBadGateway)     // ...and the answer is lost
						return
					}
					api.ServeHTTP(w, r)
				})
			}
			h := newHarness(t, harnessOpts{users: 2, clock: clock, limits: sim.Limits{DuplicateCheck: scope}, front: front})
			// Past the first interval: the sender knows what it sent in the last one.
			clock.Advance(sender.DefaultDuplicateCheckInterval + 2*time.Minute)

			h.publish("q1", "", "u0", "订单 1001：已发货")
			waitFor(t, 10*time.Second, "first answer", func() bool { return len(h.sim.SentTo("u0")) == 1 })
			h.publish("q2", "", "u0", "订单 1001：已发货")
			waitFor(t, 10*time.Second, "the repeated answer", func() bool { return len(h.sim.SentTo("u0")) == 2 })

			h.publish("q3", "", "u1", "答复 lost on the way")
			waitFor(t, 20*time.Second, "the retry after the lost answer", func() bool {
				clock.Advance(200 * time.Millisecond) // the retry's backoff
				return h.status("q3").Status == schemas.StatusSent
			})
			if got := h.sim.SentTo("u1"); len(got) != 1 {
				t.Fatalf("u1 saw %d copies, want 1", len(got))
			}
			if d := h.sim.Stats().Duplicates; d != 1 {
				t.Errorf("duplicates dropped by WeCom: %d, want 1 (the retry)", d)
			}
			if n := len(h.sim.SentTo("u0")); n != 2 || !strings.Contains(h.sim.SentTo("u0")[1].Content, "已发货") {
				t.Errorf("u0 saw %d answers, want 2", n)
			}
		})
	}
}
