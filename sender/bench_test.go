package sender_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/wxhub/wxhub/sender"
	"github.com/wxhub/wxhub/wecom/sim"
)

// BenchmarkSendRate sends three minutes' worth of messages at the per-member
// limit (10 members × 30 a minute) on a clock running 60× fast, and reports the
// achieved steady rate over the binding limit (goal >= 0.95: the first minute
// is a burst, the next ones must be used fully), plus the latency of an urgent
// message published in the middle of the bulk load. Run with -benchtime=1x.
func BenchmarkSendRate(b *testing.B) {
	const users, perMin, windows = 10, 30, 3
	for range b.N {
		clock := sender.NewScaledClock(time.Date(2025, 3, 3, 10, 0, 0, 0, shanghai), 60)
		total := users * perMin * windows
		// The backlog is in place before the sender starts: the first window is one burst.
		h := newHarness(b, harnessOpts{users: users, clock: clock, prepare: func(h *harness) {
			for i := range total {
				h.publish(fmt.Sprintf("r%05d", i), "bulk", fmt.Sprintf("u%d", i%users), fmt.Sprintf("bulk %d", i))
			}
		}})
		waitFor(b, 30*time.Second, "second window", func() bool { return h.sim.Stats().Sent >= users*perMin+10 })
		start := time.Now()
		h.publish("urgent", "urgent", "boss", "urgent")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if _, err := h.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "boss" }); err != nil {
			b.Fatal(err)
		}
		cancel()
		urgent := time.Since(start)
		waitFor(b, 60*time.Second, "all", func() bool { return h.sim.Stats().Sent >= total+1 })

		// Under "at most N in any 60 s", message i+N of a member can go at the
		// earliest 60 s after message i. Efficiency is the mean of 60 s over the
		// gap the sender actually left: 1.0 uses every slot the moment it frees.
		byUser := map[string][]time.Time{}
		for _, m := range h.sim.Sent() {
			if m.User != "boss" {
				byUser[m.User] = append(byUser[m.User], m.Time)
			}
		}
		sum, n := 0.0, 0
		for _, ts := range byUser {
			sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
			for i := 0; i+perMin < len(ts); i++ {
				sum += time.Minute.Seconds() / ts[i+perMin].Sub(ts[i]).Seconds()
				n++
			}
		}
		b.ReportMetric(sum/float64(n), "rate/limit")
		b.ReportMetric(float64(urgent.Microseconds())/1000, "urgent-ms")
		if d := len(h.sim.Dropped()); d != 0 {
			b.Fatalf("simulator dropped %d", d)
		}
		h.stop()
	}
}
