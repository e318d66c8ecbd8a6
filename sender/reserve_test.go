package sender_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/sender"
)

// Bulk may not use the share of a member's window kept for urgent and
// normal messages: with bulk having taken all it may, an urgent message to the
// same member goes out at once, not after the window.
func TestUrgentNeverWaitsBehindBulk(t *testing.T) {
	clock := sender.NewManualClock(time.Date(2025, 3, 3, 10, 0, 0, 0, shanghai))
	h := newHarness(t, harnessOpts{users: 1, clock: clock})
	for i := range 30 {
		h.publish(fmt.Sprintf("b%02d", i), schemas.PriorityBulk, "u0", fmt.Sprintf("通知 %d", i))
	}
	waitFor(t, 20*time.Second, "bulk's share of the minute", func() bool { return len(h.sim.SentTo("u0")) >= 24 })
	time.Sleep(200 * time.Millisecond) // a sender letting bulk take the whole window would send more now
	if n := len(h.sim.SentTo("u0")); n != 24 {
		t.Fatalf("bulk sent %d in the first minute, want 24 (30 less the 20%% reserve)", n)
	}
	h.publish("urgent", schemas.PriorityUrgent, "u0", "服务器宕机")
	waitFor(t, 10*time.Second, "the urgent message, with the clock standing still", func() bool {
		return h.status("urgent").Status == schemas.StatusSent
	})
	if n := len(h.sim.SentTo("u0")); n != 25 {
		t.Errorf("u0 received %d, want 24 bulk + 1 urgent", n)
	}
}
