package dashboard_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxhub/wxhub/dashboard"
)

// An app paused by WeCom's 45009 shows on the overview while the pause lasts.
func TestOverviewShowsAnAppPausedBy45009(t *testing.T) {
	now := time.Now()
	e := newEnv(t, dashboard.WithClock(func() time.Time { return now }))
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wxhub_sender_paused_until_seconds", Help: "x"}, []string{"app"})
	e.reg.MustRegister(g)
	g.WithLabelValues("helpdesk").Set(float64(now.Add(40*time.Second).UnixMilli()) / 1000)
	g.WithLabelValues("hr").Set(float64(now.Add(-time.Minute).UnixMilli()) / 1000) // over
	c := e.client(t)
	c.login(viewerToken)
	var ov dashboard.Overview
	c.getJSON("/dashboard/api/overview", &ov)
	var paused []string
	for _, it := range ov.Errors {
		if it.Kind == "pause" {
			paused = append(paused, it.Where+": "+it.Reason)
		}
	}
	if len(paused) != 1 || !strings.Contains(paused[0], "app=helpdesk") || !strings.Contains(paused[0], "40s left") {
		t.Fatalf("paused items %q, want helpdesk only with 40s left", paused)
	}
}
