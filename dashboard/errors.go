package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
)

// ErrorItem is one line of "recent errors".
type ErrorItem struct {
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"`  // dead_letter, status, counter, bus, pause
	Where  string    `json:"where"` // stage, app, metric
	ID     string    `json:"id,omitempty"`
	Seq    uint64    `json:"seq,omitempty"` // DLQ sequence
	Reason string    `json:"reason"`
	Hint   string    `json:"hint,omitempty"`
}

// errcodeHints explains the WeCom error codes operations meet most; 60020 in
// particular must be said plainly (the server's IP is not trusted).
var errcodeHints = map[string]string{
	"60020": "the hub's public IP is not on the app's trusted IP list (企业可信IP): add it in the WeCom admin console",
	"40001": "wrong app secret: fix the config; wxhub does not retry gettoken in a loop",
	"40014": "invalid access token: refreshed and retried",
	"42001": "access token expired: refreshed and retried",
	"45009": "WeCom frequency limit hit: the sender backs off",
	"-1":    "WeCom busy: retried with backoff",
	"81013": "no valid recipient (user, party and tag all invalid or unauthorized)",
	"40003": "invalid userid",
	"41001": "access token missing",
}

// hintFor finds an error code in a reason or label value.
func hintFor(s string) string {
	if h, ok := errcodeHints[s]; ok {
		return h
	}
	for code, h := range errcodeHints {
		if code != "-1" && strings.Contains(s, code) {
			return h
		}
	}
	return ""
}

// errorRing keeps the newest failed statuses seen by the watcher.
type errorRing struct {
	mu    sync.Mutex
	max   int
	items []ErrorItem
}

func newErrorRing(max int) *errorRing { return &errorRing{max: max} }

func (e *errorRing) add(it ErrorItem) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.items = append(e.items, it)
	if len(e.items) > e.max {
		e.items = e.items[len(e.items)-e.max:]
	}
}

func (e *errorRing) list() []ErrorItem {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]ErrorItem(nil), e.items...)
}

// statusBackfill is how many of the status bucket's newest writes the watcher
// reads when it starts: failures written before the dashboard started (or
// while it was down) show in "recent errors" too.
const statusBackfill = 1000

// watchStatus follows the status bucket for failed sends; it restarts the watch
// after an error (broker restart) until ctx ends, from the revision after the
// last one it saw, so that nothing written meanwhile is missed or shown twice.
func (d *Dashboard) watchStatus(ctx context.Context) {
	defer close(d.done)
	var next uint64 // 0: not started yet
	for {
		err := d.watchOnce(ctx, &next)
		if ctx.Err() != nil {
			return
		}
		d.log.Debug("status watch ended; retrying", zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

// watchOnce watches the status bucket from revision *next on (from the last
// statusBackfill writes when *next is 0), advancing *next past every entry.
func (d *Dashboard) watchOnce(ctx context.Context, next *uint64) error {
	kv, err := d.bus.KV(ctx, bus.BucketStatus)
	if err != nil {
		return err
	}
	if *next == 0 {
		st, err := kv.Status(ctx)
		if err != nil {
			return err
		}
		*next = 1
		if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
			if last := bs.StreamInfo().State.LastSeq; last > statusBackfill {
				*next = last - statusBackfill + 1
			}
		}
	}
	// History included: a failure later overwritten is still one that happened.
	w, err := kv.WatchAll(ctx, jetstream.IncludeHistory(), jetstream.ResumeFromRevision(*next), jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watcher closed")
			}
			if e == nil {
				continue
			}
			*next = e.Revision() + 1
			var st schemas.MessageStatus
			if json.Unmarshal(e.Value(), &st) != nil || (st.Status != schemas.StatusFailed && st.Status != schemas.StatusDropped) {
				continue
			}
			t := st.UpdatedAt
			if t.IsZero() {
				t = e.Created()
			}
			reason, hint := st.Reason, hintFor(st.Reason)
			if st.Status == schemas.StatusDropped {
				// Accepted with errcode 0 and delivered to no one.
				reason = "dropped by WeCom: " + reason
				hint = "the same message body was sent again within sender.duplicate_check_interval: make repeated answers differ (e.g. add the time) or shorten the interval"
			}
			d.errors.add(ErrorItem{Time: t, Kind: "status", Where: st.App, ID: st.ID, Reason: reason, Hint: hint})
		}
	}
}

// recentDLQ returns the newest n dead letters as errors.
func (d *Dashboard) recentDLQ(ctx context.Context, lastSeq uint64, n int) []ErrorItem {
	after := uint64(0)
	if lastSeq > uint64(n) {
		after = lastSeq - uint64(n)
	}
	es, err := d.bus.ListDLQ(ctx, bus.DLQFilter{After: after, Limit: n})
	if err != nil {
		d.log.Debug("recent dead letters", zap.Error(err))
	}
	out := make([]ErrorItem, 0, len(es))
	for _, e := range es {
		l := e.Letter.Data
		out = append(out, ErrorItem{Time: e.Stored, Kind: "dead_letter", Where: l.Stage, ID: e.Letter.ID, Seq: e.Seq,
			Reason: truncate(l.Reason, 300), Hint: hintFor(l.Reason)})
	}
	return out
}

// counterErrors lists failing counter series that moved within the window:
// a result label other than success, or an errcode label other than 0.
func counterErrors(now time.Time, rates []Rate) []ErrorItem {
	var out []ErrorItem
	for _, r := range rates {
		if r.PerMinute <= 0 {
			continue
		}
		res, hasRes := r.Labels["result"]
		code := r.Labels["errcode"]
		failing := (hasRes && !successResult(r.Labels)) || (code != "" && code != "0")
		if !failing {
			continue
		}
		where := r.Metric
		if app := r.Labels["app"]; app != "" {
			where += " app=" + app
		}
		reason := "result=" + res
		if code != "" {
			reason += " errcode=" + code
		}
		out = append(out, ErrorItem{Time: now, Kind: "counter", Where: where,
			Reason: reason + " (" + formatRate(r.PerMinute) + "/min)", Hint: hintFor(code)})
	}
	return out
}

func mergeErrors(groups ...[]ErrorItem) []ErrorItem {
	var out []ErrorItem
	for _, g := range groups {
		out = append(out, g...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	if len(out) > 50 {
		out = out[:50]
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// cut on a rune boundary: reasons are often Chinese
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
