package router

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxhub/wxhub/internal/promreg"
)

type metrics struct {
	events  *prometheus.CounterVec
	seconds prometheus.Histogram
	reloads *prometheus.CounterVec
	// voice messages transcribed (transcribe.go)
	transcriptions    *prometheus.CounterVec
	transcribeSeconds prometheus.Histogram
}

// defaultRule is the rule label of events no rule matched.
const defaultRule = "default"

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	return &metrics{
		events: promreg.MustRegister(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxhub_router_events_total",
			Help: "Events routed, by the rule that matched (\"default\" when none did) and the connector it sent them to.",
		}, []string{"rule", "connector"})),
		seconds: promreg.MustRegister(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wxhub_router_route_seconds",
			Help:    "Time to route one event: match, publish to every connector, ack.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 5},
		})),
		reloads: promreg.MustRegister(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxhub_router_reloads_total",
			Help: "Rule reloads (file change or SIGHUP) by result: ok, or error (the old rules stayed).",
		}, []string{"result"})),
		transcriptions: promreg.MustRegister(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxhub_router_transcriptions_total",
			Help: "WeCom voice messages transcribed before routing (router.transcriber), by result: ok, or failed (routed without data.recognition).",
		}, []string{"result"})),
		transcribeSeconds: promreg.MustRegister(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wxhub_router_transcribe_seconds",
			Help:    "Time to fetch and transcribe one voice message, bounded by router.transcriber.timeout.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 5, 10, 30},
		})),
	}
}

// countRouted adds one to each (rule, connector) pair the event went through.
func (r *Router) countRouted(rs *ruleSet, hits []int, to []string) {
	if len(hits) == 0 {
		for _, c := range to {
			r.m.events.WithLabelValues(defaultRule, c).Inc()
		}
		return
	}
	for _, i := range hits {
		cr := &rs.rules[i]
		for _, c := range cr.rule.To {
			r.m.events.WithLabelValues(cr.name, c).Inc()
		}
	}
}
