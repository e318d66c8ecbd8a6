package gateway

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	callbacks       *prometheus.CounterVec
	callbackSeconds *prometheus.HistogramVec
	publishSeconds  prometheus.Histogram
	pushes          *prometheus.CounterVec
	passThrough     *prometheus.CounterVec
	mediaReads      *prometheus.CounterVec
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxhub_gateway_callbacks_total",
			Help: "WeChat callbacks by channel, app, event type and result (ok or the HTTP status).",
		}, []string{"channel", "app", "type", "result"}),
		callbackSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wxhub_gateway_callback_seconds",
			Help:    "Time to answer a callback, including the JetStream publish.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"channel"}),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wxhub_gateway_publish_seconds",
			Help:    "Time from publish to JetStream ack.",
			Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .02, .05, .1, .5, 1, 3},
		}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxhub_gateway_push_total",
			Help: "Push API and drop-in requests by client, app and result.",
		}, []string{"client", "app", "result"}),
		passThrough: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxhub_gateway_passthrough_total",
			Help: "WeCom API calls passed through for legacy systems, by client, API and result (ok or WeCom's errcode).",
		}, []string{"client", "api", "result"}),
		mediaReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxhub_gateway_media_reads_total",
			Help: "Media served by GET /api/v1/media/{app}/{media_id}, by app and whether the hub's store had it (cached) or WeCom was asked.",
		}, []string{"app", "cached"}),
	}
	r.MustRegister(m.callbacks, m.callbackSeconds, m.publishSeconds, m.pushes, m.passThrough, m.mediaReads)
	return m
}
