package dashboard

import (
	"time"

	dto "github.com/prometheus/client_model/go"
)

// pausedMetric is the sender's gauge of when an app's 45009 pause ends.
const pausedMetric = "wxhub_sender_paused_until_seconds"

// pausedApps lists the apps whose sends WeCom's frequency limit (45009) holds
// back right now, as error items: a pause stops one app's messages for up to
// sender.retry.max_pause, which operations should see.
func pausedApps(now time.Time, fams []*dto.MetricFamily) []ErrorItem {
	var out []ErrorItem
	for _, f := range fams {
		if f.GetName() != pausedMetric {
			continue
		}
		for _, m := range f.GetMetric() {
			until := time.UnixMilli(int64(m.GetGauge().GetValue() * 1000))
			if !until.After(now) {
				continue
			}
			app := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "app" {
					app = l.GetValue()
				}
			}
			out = append(out, ErrorItem{Time: now, Kind: "pause", Where: "sender app=" + app,
				Reason: "WeCom frequency limit (45009): this app's sends pause until " + until.UTC().Format(time.RFC3339) +
					" (" + until.Sub(now).Round(time.Second).String() + " left)", Hint: hintFor("45009")})
		}
	}
	return out
}
