package sender

import (
	"sync"
	"time"
)

// DefaultMaxPause is Retry.MaxPause when unset: WeCom's frequency limits are
// per minute, so a minute's pause lets any of them recover.
const DefaultMaxPause = time.Minute

// pauses holds back one app's sends after WeCom answered 45009 (a frequency
// limit) and counts distinct events, not answers: an answer to a request that
// was already in flight when the current pause began belongs to that pause,
// so a burst of concurrent 45009 answers is one event and grows nothing. The
// next event (a 45009 to a request sent after the pause began) doubles the
// pause, up to max; a successful send resets the count. WeCom does not say
// which limit a 45009 hit; when it is the corp's, every app gets its own 45009
// and pauses, which is the corp-wide pause. Safe for concurrent use.
type pauses struct {
	base, max time.Duration
	rnd       func() float64

	mu   sync.Mutex
	apps map[string]*appPause
}

type appPause struct {
	events  int       // distinct 45009 events since the last success
	started time.Time // when the current pause began
	until   time.Time
}

func newPauses(base, max time.Duration, rnd func() float64) *pauses {
	return &pauses{base: base, max: max, rnd: rnd, apps: map[string]*appPause{}}
}

// hit records a 45009 answer from app to a request sent at sentAt and returns
// the end of the app's pause; newEvent is false when the answer belongs to the
// pause already running.
func (p *pauses) hit(app string, sentAt, now time.Time) (until time.Time, newEvent bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.apps[app]
	if a == nil {
		a = &appPause{}
		p.apps[app] = a
	}
	if a.events > 0 && !sentAt.After(a.started) {
		return a.until, false
	}
	a.events++
	a.started = now
	a.until = now.Add(backoff(a.events, p.base, p.max, p.rnd))
	return a.until, true
}

// until is the end of app's pause (zero or past: not paused).
func (p *pauses) until(app string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a := p.apps[app]; a != nil {
		return a.until
	}
	return time.Time{}
}

// ok records a successful send from app: the next 45009 starts from the base pause.
func (p *pauses) ok(app string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a := p.apps[app]; a != nil && a.events > 0 {
		a.events = 0
	}
}
