package sharedmetrics_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/internal/sharedmetrics"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func family(fams []*dto.MetricFamily, name string) *dto.MetricFamily {
	for _, f := range fams {
		if f.GetName() == name {
			return f
		}
	}
	return nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// A process's wxhub_ counters and gauges reach another process's gatherer,
// labelled with the process and stamped with the snapshot's time; its own
// snapshot is not added twice, histograms and foreign metrics stay home, and
// a stopped process's series leave.
func TestPublishedCountersReachOtherProcesses(t *testing.T) {
	b := bustest.Open(t, bus.Config{})
	local, remote := prometheus.NewRegistry(), prometheus.NewRegistry()
	lc := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wxhub_x_total", Help: "x"}, []string{"app", "result", "errcode", "zone"})
	rc := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wxhub_x_total", Help: "x"}, []string{"app", "result", "errcode", "zone"})
	local.MustRegister(lc)
	remote.MustRegister(rc,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wxhub_g", Help: "g"}, func() float64 { return 3 }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "go_foreign_total", Help: "f"}, func() float64 { return 1 }),
		prometheus.NewHistogram(prometheus.HistogramOpts{Name: "wxhub_h_seconds", Help: "h"}))
	lc.WithLabelValues("a", "sent", "0", "z").Add(1)
	rc.WithLabelValues("a", "sent", "0", "z").Add(7)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rctx, stopRemote := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sharedmetrics.Publish(rctx, b, remote, "k-remote", "sender@k-remote", 50*time.Millisecond, nil)
	}()
	go sharedmetrics.Publish(ctx, b, local, "k-local", "gateway@k-local", 50*time.Millisecond, nil)

	g := sharedmetrics.NewGatherer(local, b, "k-local")
	var fams []*dto.MetricFamily
	waitFor(t, "the remote snapshot", func() bool {
		var err error
		fams, err = g.Gather()
		if err != nil {
			t.Fatal(err)
		}
		return family(fams, "wxhub_g") != nil
	})
	x := family(fams, "wxhub_x_total")
	if x == nil || len(x.GetMetric()) != 2 {
		t.Fatalf("wxhub_x_total: %v, want the local series and the remote one", x)
	}
	for _, m := range x.GetMetric() {
		// Labels sorted by name, in every gather: a reader keys series by them.
		if !slices.IsSortedFunc(m.GetLabel(), func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) }) {
			t.Errorf("labels out of order: %v", m.GetLabel())
		}
		switch p := label(m, sharedmetrics.LabelProcess); p {
		case "":
			if m.GetCounter().GetValue() != 1 || m.GetTimestampMs() != 0 {
				t.Errorf("local series %v", m)
			}
		case "sender@k-remote":
			if m.GetCounter().GetValue() != 7 || label(m, "app") != "a" || m.GetTimestampMs() == 0 {
				t.Errorf("remote series %v", m)
			}
		default:
			t.Errorf("series of process %q: this process's own snapshot added", p)
		}
	}
	if m := family(fams, "wxhub_g").GetMetric(); len(m) != 1 || m[0].GetGauge().GetValue() != 3 {
		t.Errorf("wxhub_g: %v", m)
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			if f.GetName() != "wxhub_x_total" && f.GetName() != "wxhub_g" && label(m, sharedmetrics.LabelProcess) != "" {
				t.Errorf("%s shared: only wxhub_ counters and gauges are", f.GetName())
			}
		}
	}

	stopRemote()
	<-done
	waitFor(t, "the stopped process's series to leave", func() bool {
		fams, err := g.Gather()
		return err == nil && family(fams, "wxhub_g") == nil
	})
}
