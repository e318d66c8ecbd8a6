package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
)

// Overview is the live view: queues, lag, rates, limits and recent errors.
type Overview struct {
	Time     time.Time `json:"time"`
	BusError string    `json:"bus_error,omitempty"`
	BusState
	Rates  []Rate      `json:"rates"`
	Limits []LimitUse  `json:"limits"`
	Errors []ErrorItem `json:"errors"`
}

// snapshot returns the overview, computed at most once per half refresh
// however many browsers watch: JetStream is asked once for all of them.
func (d *Dashboard) snapshot(ctx context.Context) *Overview {
	d.snapMu.Lock()
	defer d.snapMu.Unlock()
	now := d.now()
	if d.snap != nil && now.Sub(d.snapAt) < d.cfg.Refresh/2 {
		return d.snap
	}
	// One caller leaving must not fail the snapshot the others share.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), collectTimeout)
	defer cancel()
	ov := &Overview{Time: now.UTC()}
	st, err := readBusState(ctx, d.bus, d.connectors...)
	ov.BusState = st
	var errs [][]ErrorItem
	if err != nil {
		ov.BusError = err.Error()
		errs = append(errs, []ErrorItem{{Time: now, Kind: "bus", Where: "JetStream", Reason: err.Error()}})
	}
	if d.gatherer != nil {
		if fams, err := d.gatherer.Gather(); err != nil {
			d.log.Debug("gather", zap.Error(err))
		} else {
			ov.Rates = d.rates.observe(now, fams)
			errs = append(errs, pausedApps(now, fams))
		}
	}
	ov.Limits = limitUse(ov.Rates, d.cfg.SentMetric, d.limits)
	for _, s := range st.Streams {
		if s.Name == bus.StreamDLQ && s.Messages > 0 {
			errs = append(errs, d.recentDLQ(ctx, s.LastSeq, 10))
		}
	}
	errs = append(errs, d.errors.list(), counterErrors(now, ov.Rates))
	ov.Errors = mergeErrors(errs...)
	if ov.Rates == nil {
		ov.Rates = []Rate{}
	}
	d.snap, d.snapAt = ov, now
	return ov
}

func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request, _ session) {
	writeJSON(w, http.StatusOK, d.snapshot(r.Context()))
}

// events streams the overview as Server-Sent Events ("overview" events) every
// Refresh, with a comment line as keep-alive in between.
func (d *Dashboard) events(w http.ResponseWriter, r *http.Request, _ session) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	send := func() bool {
		// The gateway's server has a WriteTimeout; an event stream lives longer.
		_ = rc.SetWriteDeadline(time.Now().Add(d.cfg.Refresh + 10*time.Second))
		data, err := json.Marshal(d.snapshot(r.Context()))
		if err != nil {
			return false
		}
		if _, err := fmt.Fprintf(w, "retry: 3000\nevent: overview\ndata: %s\n\n", data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send() {
		return
	}
	t := time.NewTicker(d.cfg.Refresh)
	defer t.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
			if !send() {
				return
			}
		}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func formatRate(v float64) string {
	if v >= 10 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}
