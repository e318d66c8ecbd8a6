package dashboard

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

func TestRatesAndLimits(t *testing.T) {
	reg := prometheus.NewRegistry()
	sent := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wxhub_sender_sends_total", Help: "h"}, []string{"app", "result", "errcode"})
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "go_gc_total_not_ours", Help: "h"})
	reg.MustRegister(sent, other)
	rt := newRateTracker(time.Minute)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	observe := func(at time.Time) []Rate {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		return rt.observe(at, fams)
	}
	sent.WithLabelValues("helpdesk", "ok", "0").Add(100)
	observe(t0)
	sent.WithLabelValues("helpdesk", "ok", "0").Add(30)       // 30 in 30 s = 60/min
	sent.WithLabelValues("hr", "ok", "0").Add(15)             // new series: no rate yet
	sent.WithLabelValues("helpdesk", "error", "60020").Add(3) // failures, new
	rates := observe(t0.Add(30 * time.Second))
	sent.WithLabelValues("hr", "ok", "0").Add(10)             // 10 in 30 s = 20/min
	sent.WithLabelValues("helpdesk", "error", "60020").Add(2) // 4/min
	rates = observe(t0.Add(60 * time.Second))

	get := func(app, result string) Rate {
		for _, r := range rates {
			if r.Metric == "wxhub_sender_sends_total" && r.Labels["app"] == app && r.Labels["result"] == result {
				return r
			}
		}
		t.Fatalf("no rate for %s %s in %+v", app, result, rates)
		return Rate{}
	}
	near := func(got, want float64) bool { return math.Abs(got-want) < 0.01 }
	if r := get("helpdesk", "ok"); !near(r.PerMinute, 30) || r.Total != 130 {
		t.Errorf("helpdesk ok: %+v, want 30/min over the 60 s window, total 130", r)
	}
	if r := get("hr", "ok"); !near(r.PerMinute, 20) {
		t.Errorf("hr ok: %+v, want 20/min", r)
	}
	for _, r := range rates {
		if !strings.HasPrefix(r.Metric, "wxhub_") {
			t.Errorf("foreign metric %s in rates", r.Metric)
		}
	}

	uses := limitUse(rates, "wxhub_sender_sends_total", []SendLimit{
		{App: "helpdesk", Name: "member/minute", PerMinute: 60},
		{Name: "corp message/send per minute", PerMinute: 100},
	})
	want := []LimitUse{
		{SendLimit: SendLimit{App: "helpdesk", Name: "member/minute", PerMinute: 60}, Sent: 30, Ratio: 0.5},
		{SendLimit: SendLimit{Name: "corp message/send per minute", PerMinute: 100}, Sent: 50, Ratio: 0.5},
		{SendLimit: SendLimit{App: "hr", Name: "no limit configured"}, Sent: 20},
	}
	if len(uses) != len(want) {
		t.Fatalf("limit uses %+v, want %+v", uses, want)
	}
	for i := range want {
		if uses[i].SendLimit != want[i].SendLimit || !near(uses[i].Sent, want[i].Sent) || !near(uses[i].Ratio, want[i].Ratio) {
			t.Errorf("limit use %d: %+v, want %+v", i, uses[i], want[i])
		}
	}

	errs := counterErrors(t0, rates)
	if len(errs) != 1 || !strings.Contains(errs[0].Reason, "errcode=60020") || !strings.Contains(errs[0].Hint, "trusted IP") {
		t.Fatalf("counter errors %+v, want one 60020 with the trusted-IP hint", errs)
	}
}

func TestHealth(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	recent, old := now.Add(-10*time.Second), now.Add(-10*time.Minute)
	tests := []struct {
		name  string
		given ConsumerState
		want  string
	}{
		{"pulling", ConsumerState{Waiting: 2}, "online"},
		{"recently active", ConsumerState{LastActive: &recent}, "online"},
		{"work waits, nobody active", ConsumerState{Pending: 3, LastActive: &old}, "stalled"},
		{"in flight, nobody active", ConsumerState{AckPending: 1}, "stalled"},
		{"quiet", ConsumerState{LastActive: &old}, "idle"},
		{"never used", ConsumerState{}, "never"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := health(tt.given, now); got != tt.want {
				t.Fatalf("health %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTruncateKeepsRunes(t *testing.T) {
	s := "错误错误"
	got := truncate(s, 4) // mid-rune
	if !strings.HasPrefix(got, "错") || strings.ContainsRune(got, '\uFFFD') || got != "错…" {
		t.Fatalf("truncate: %q", got)
	}
}

// A series of another process carries its snapshot's time: the rate is
// computed on that clock, and the same snapshot seen twice adds no sample.
func TestRatesOnTheSnapshotsClock(t *testing.T) {
	rt := newRateTracker(time.Minute)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fam := func(at time.Time, v float64) []*dto.MetricFamily {
		return []*dto.MetricFamily{{Name: proto.String("wxhub_sender_sends_total"), Type: dto.MetricType_COUNTER.Enum(),
			Metric: []*dto.Metric{{
				Label:       []*dto.LabelPair{{Name: proto.String("process"), Value: proto.String("sender@x")}},
				Counter:     &dto.Counter{Value: proto.Float64(v)},
				TimestampMs: proto.Int64(at.UnixMilli()),
			}}}}
	}
	rt.observe(t0.Add(time.Second), fam(t0, 10))
	if r := rt.observe(t0.Add(3*time.Second), fam(t0, 10)); r[0].PerMinute != 0 {
		t.Fatalf("the same snapshot twice: %v/min, want 0", r[0].PerMinute)
	}
	// Observed 4 s apart here, taken 30 s apart there: 30 in 30 s.
	if r := rt.observe(t0.Add(7*time.Second), fam(t0.Add(30*time.Second), 40)); math.Abs(r[0].PerMinute-60) > 0.01 {
		t.Fatalf("rate %v/min, want 60", r[0].PerMinute)
	}
}
