package promreg_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxhub/wxhub/internal/promreg"
)

func TestRegisterSharesTheFirstCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	newCounter := func() *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"l"})
	}
	first := promreg.MustRegister(reg, newCounter())
	second, err := promreg.Register(reg, newCounter())
	if err != nil || second != first {
		t.Fatalf("second registration: %v, same collector %v", err, second == first)
	}
	second.WithLabelValues("a").Inc()
	if got := testCount(t, reg); got != 1 {
		t.Errorf("one series counted %v times, want 1", got)
	}

	// The same name for a different metric is an error, and a panic for MustRegister.
	other := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x_total", Help: "y"})
	if _, err := promreg.Register(reg, other); err == nil {
		t.Error("a different metric under a taken name: no error")
	}
	defer func() {
		if recover() == nil {
			t.Error("MustRegister of a conflicting metric did not panic")
		}
	}()
	promreg.MustRegister(reg, other)
}

func testCount(t *testing.T, g prometheus.Gatherer) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil || len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gather: %v, %d families", err, len(mfs))
	}
	return mfs[0].GetMetric()[0].GetCounter().GetValue()
}
