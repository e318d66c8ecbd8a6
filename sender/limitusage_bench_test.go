package sender

import (
	"fmt"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxhub/wxhub/dnd"
)

// BenchmarkLimitUsageCollect is one scrape of wxhub_sender_limit_usage with
// 10,000 members in the limiter's cache, half of them changed since the last
// scrape (1,000 messages/s, a scrape every 5 s). "kept" is the cache as
// commits leave it now (each ledger kept decoded); "decoded" is what a scrape
// had to do before: decode every changed ledger from its JSON. "idle" is the
// second scrape after the members' windows have passed: the first one dropped
// their ledgers from the cache.
func BenchmarkLimitUsageCollect(b *testing.B) {
	const members = 10_000
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	s := &Sender{cfg: Config{Apps: []App{{Name: "helpdesk"}}}, clock: NewManualClock(now), loc: time.UTC,
		memberRules: []rule{{Name: "m", Limit: 30, Span: time.Minute}, {Name: "h", Limit: 1000, Span: time.Hour, Res: time.Minute}}}
	entries := make(map[string]cachedEntry, members)
	for i := range members {
		lg := &ledger{}
		for j := range 1 + i%5 {
			lg.add(now.Add(-time.Duration(j)*7*time.Second), s.memberRules, 1, time.Second)
		}
		val, _ := json.Marshal(lg)
		entries[fmt.Sprintf("member.%s.%s", dnd.Key("helpdesk"), dnd.Key(fmt.Sprintf("u%05d", i)))] = cachedEntry{val: val, rev: uint64(i + 1), view: newUsageView(lg)}
	}
	u := &limitUsage{s: s, desc: prometheus.NewDesc("x", "x", []string{"app", "limit"}, nil)}
	for _, mode := range []string{"kept", "decoded", "idle"} {
		b.Run(mode, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				s.lim = newLimiter(nil, time.Second, time.UTC)
				n := 0
				for k, e := range entries {
					if mode == "decoded" && n%2 == 0 {
						e.view = nil
					}
					s.lim.cache[k] = e
					n++
				}
				if mode == "idle" {
					s.clock = NewManualClock(now.Add(2 * time.Hour))
					drain := make(chan prometheus.Metric, 64)
					u.Collect(drain)
				}
				ch := make(chan prometheus.Metric, 64)
				done := make(chan struct{})
				go func() {
					for range ch {
					}
					close(done)
				}()
				b.StartTimer()
				u.Collect(ch)
				b.StopTimer()
				close(ch)
				<-done
				s.clock = NewManualClock(now)
			}
		})
	}
}
