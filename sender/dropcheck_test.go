package sender_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/sender"
	"github.com/wxhub/wxhub/wecom/sim"
)

// A second message with the same body within the duplicate-check interval is
// accepted by WeCom (errcode 0) and dropped: the sender says so in its status,
// its log and wxhub_sender_dropped_total; the simulator lists the drop.
func TestSimDuplicateDropIsReported(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHarness(t, harnessOpts{opts: []sender.Option{sender.WithRegisterer(reg)}})
	h.publish("push-1", "", "boss", "审批已通过")
	waitFor(t, 10*time.Second, "push-1 sent", func() bool { return h.status("push-1").Status == schemas.StatusSent })
	h.publish("push-2", "", "boss", "审批已通过") // same body, another message
	waitFor(t, 10*time.Second, "push-2 dropped", func() bool { return h.status("push-2").Status == schemas.StatusDropped })
	if st := h.status("push-2"); st.Reason == "" || st.Reason[:len(sender.DropDuplicate)] != sender.DropDuplicate {
		t.Errorf("push-2 reason %q, want one starting with %q", st.Reason, sender.DropDuplicate)
	}
	waitMetric(t, reg, "wxhub_sender_dropped_total", L{"app": testApp, "reason": sender.DropDuplicate}, 1)
	if d := h.sim.Dropped(); len(d) != 1 || d[0].Reason != sim.DropDuplicate || d[0].User != "boss" {
		t.Errorf("simulator dropped %+v, want one duplicate to boss", d)
	}
	if n := len(h.sim.SentTo("boss")); n != 1 {
		t.Errorf("boss got %d messages, want 1", n)
	}

	// A different body is delivered and not reported.
	h.publish("push-3", "", "boss", "审批已驳回")
	waitFor(t, 10*time.Second, "push-3 sent", func() bool { return h.status("push-3").Status == schemas.StatusSent })
	if got := metric(t, reg, "wxhub_sender_dropped_total", L{"app": testApp, "reason": sender.DropDuplicate}); got != 1 {
		t.Errorf("dropped_total = %v after a different body, want 1", got)
	}
}
