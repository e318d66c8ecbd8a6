package sender

import (
	"testing"
	"time"
)

func TestPausesCountDistinctEventsPerApp(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	one := func() float64 { return 1 } // the ceiling of each jittered pause
	p := newPauses(time.Second, 8*time.Second, one)

	// Ten answers within 1 ms to requests all sent before the first answer: one event.
	var until time.Time
	events := 0
	for i := range 10 {
		u, isNew := p.hit("a", t0, t0.Add(time.Duration(i)*100*time.Microsecond))
		if isNew {
			events++
		}
		until = u
	}
	if events != 1 || until != t0.Add(time.Second) {
		t.Fatalf("burst: %d events, until %s; want 1 event, base pause", events, until.Sub(t0))
	}
	if got := p.until("b"); !got.IsZero() {
		t.Fatalf("app b paused until %s by app a's 45009", got)
	}
	// A request sent after the pause began and answered 45009: a new event, doubled.
	t1 := until.Add(time.Millisecond)
	if u, isNew := p.hit("a", t1, t1.Add(10*time.Millisecond)); !isNew || u.Sub(t1.Add(10*time.Millisecond)) != 2*time.Second {
		t.Fatalf("second event: new %v, pause %s; want new, 2s", isNew, u.Sub(t1))
	}
	// Growth stops at the maximum.
	now := t1
	for range 10 {
		now = p.until("a").Add(time.Millisecond)
		p.hit("a", now, now)
	}
	if d := p.until("a").Sub(now); d != 8*time.Second {
		t.Fatalf("pause %s after many events, want the 8s maximum", d)
	}
	// A success resets it.
	p.ok("a")
	now = p.until("a").Add(time.Millisecond)
	if u, _ := p.hit("a", now, now); u.Sub(now) != time.Second {
		t.Fatalf("pause after a success %s, want the base 1s", u.Sub(now))
	}
}
