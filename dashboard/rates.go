package dashboard

import (
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Rate is one counter series and its rate over the tracker's window.
type Rate struct {
	Metric    string            `json:"metric"`
	Labels    map[string]string `json:"labels,omitempty"`
	Total     float64           `json:"total"`
	PerMinute float64           `json:"per_minute"`
}

// LimitUse is the send rate of one app (or the corp) against one limit.
type LimitUse struct {
	SendLimit
	Sent  float64 `json:"sent_per_minute"`
	Ratio float64 `json:"ratio"` // Sent / PerMinute; 0 when there is no limit
}

type sample struct {
	t time.Time
	v float64
}

// rateTracker turns counter totals into per-minute rates from the samples it
// has seen within window (the gatherer gives totals, not rates).
type rateTracker struct {
	mu     sync.Mutex
	window time.Duration
	series map[string][]sample
}

func newRateTracker(window time.Duration) *rateTracker {
	return &rateTracker{window: window, series: map[string][]sample{}}
}

// maxRates bounds what the overview sends: the busiest series first.
const maxRates = 300

// observe records the counters of fams at now and returns every wxhub_ counter
// with its rate, busiest first.
func (rt *rateTracker) observe(now time.Time, fams []*dto.MetricFamily) []Rate {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var out []Rate
	seen := map[string]bool{}
	for _, f := range fams {
		name := f.GetName()
		if !strings.HasPrefix(name, "wxhub_") || f.GetType() != dto.MetricType_COUNTER {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			key := name
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
				key += "\x00" + lp.GetName() + "=" + lp.GetValue()
			}
			v := m.GetCounter().GetValue()
			seen[key] = true
			// A series of another process (sharedmetrics) carries the time of
			// its snapshot, on that process's clock: rates are computed there.
			at := now
			if ts := m.GetTimestampMs(); ts > 0 {
				at = time.UnixMilli(ts)
			}
			s := rt.series[key]
			if n := len(s); n > 0 && !at.After(s[n-1].t) {
				s[n-1].v = v // the same snapshot again
			} else {
				s = append(s, sample{at, v})
			}
			cut := 0
			for cut < len(s)-1 && at.Sub(s[cut].t) > rt.window {
				cut++
			}
			s = s[cut:]
			rt.series[key] = s
			r := Rate{Metric: name, Labels: labels, Total: v}
			if first, last := s[0], s[len(s)-1]; len(s) > 1 && last.t.After(first.t) && v >= first.v {
				r.PerMinute = (v - first.v) / last.t.Sub(first.t).Minutes()
			}
			out = append(out, r)
		}
	}
	for k := range rt.series {
		if !seen[k] {
			delete(rt.series, k) // a series that vanished (restart) starts over
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].PerMinute != out[j].PerMinute {
			return out[i].PerMinute > out[j].PerMinute
		}
		if out[i].Metric != out[j].Metric {
			return out[i].Metric < out[j].Metric
		}
		return labelKey(out[i].Labels) < labelKey(out[j].Labels)
	})
	if len(out) > maxRates {
		out = out[:maxRates]
	}
	return out
}

func labelKey(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + l[k] + ",")
	}
	return b.String()
}

// successResult tells a successful send in the sent counter's result label.
func successResult(l map[string]string) bool {
	r, ok := l["result"]
	return !ok || r == "ok" || r == "sent" || r == "success"
}

// limitUse draws the successful send rate of metric (per app, and summed for
// the corp) against limits. Apps without a limit are listed with ratio 0 so the
// rate still shows.
func limitUse(rates []Rate, metric string, limits []SendLimit) []LimitUse {
	perApp := map[string]float64{}
	corp := 0.0
	for _, r := range rates {
		if r.Metric != metric || !successResult(r.Labels) {
			continue
		}
		perApp[r.Labels["app"]] += r.PerMinute
		corp += r.PerMinute
	}
	var out []LimitUse
	limited := map[string]bool{}
	for _, l := range limits {
		sent := corp
		if l.App != "" {
			sent = perApp[l.App]
		}
		u := LimitUse{SendLimit: l, Sent: sent}
		if l.PerMinute > 0 {
			u.Ratio = sent / l.PerMinute
		}
		limited[l.App] = true
		out = append(out, u)
	}
	apps := make([]string, 0, len(perApp))
	for a := range perApp {
		apps = append(apps, a)
	}
	sort.Strings(apps)
	for _, a := range apps {
		if !limited[a] {
			out = append(out, LimitUse{SendLimit: SendLimit{App: a, Name: "no limit configured"}, Sent: perApp[a]})
		}
	}
	return out
}
