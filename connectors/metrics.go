package connectors

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxhub/wxhub/internal/promreg"
)

// metrics are the runner's Prometheus collectors. Several runners (connectors,
// or two runners of one connector) share one set per registry: registering a
// second time finds the first set (promreg.Register).
type metrics struct {
	events   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
	last     *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxhub_connector_events_total",
			Help: "Deliveries handled by a connector, by outcome (acked, answered, retry, dead_letter, requeued).",
		}, []string{"connector", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wxhub_connector_handle_seconds",
			Help:    "Time from receiving an event to settling it, replies published included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"connector"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wxhub_connector_in_flight",
			Help: "Handler calls running now.",
		}, []string{"connector"}),
		last: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wxhub_connector_last_event_timestamp_seconds",
			Help: "Unix time of the last event received; alert on age when traffic is expected.",
		}, []string{"connector"}),
	}
	var err error
	if m.events, err = promreg.Register(reg, m.events); err != nil {
		return nil, err
	}
	if m.duration, err = promreg.Register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.inFlight, err = promreg.Register(reg, m.inFlight); err != nil {
		return nil, err
	}
	if m.last, err = promreg.Register(reg, m.last); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) received(name string, now time.Time) {
	if m != nil {
		m.last.WithLabelValues(name).Set(float64(now.UnixNano()) / 1e9)
	}
}

func (m *metrics) running(name string, delta float64) {
	if m != nil {
		m.inFlight.WithLabelValues(name).Add(delta)
	}
}

func (m *metrics) settled(name string, o Outcome, d time.Duration) {
	if m != nil {
		m.events.WithLabelValues(name, string(o)).Inc()
		m.duration.WithLabelValues(name).Observe(d.Seconds())
	}
}
