package sender

import (
	"sort"
	"sync"
	"time"
)

// Clock is the sender's notion of business time: send windows, quiet hours,
// backoff and token expiry all read it. NATS timing (AckWait, heartbeats) stays
// on the wall clock. Implementations must be safe for concurrent use.
type Clock interface {
	Now() time.Time
	// After delivers once, when Now has reached now+d.
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now is time.Now.
func (SystemClock) Now() time.Time { return time.Now() }

// After is time.After.
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// ManualClock only moves when told to (tests). Timers fire on Advance or Set.
// The zero value is not usable; use NewManualClock.
type ManualClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []manualWaiter
}

type manualWaiter struct {
	at time.Time
	ch chan time.Time
}

// NewManualClock starts at t.
func NewManualClock(t time.Time) *ManualClock { return &ManualClock{now: t} }

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After fires when the clock has been moved to now+d or later.
func (c *ManualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	at := c.now.Add(d)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, manualWaiter{at: at, ch: ch})
	return ch
}

// Advance moves the clock forward by d and fires due timers.
func (c *ManualClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// Set moves the clock to t (forward or back) and fires due timers.
func (c *ManualClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	keep := c.waiters[:0]
	var due []manualWaiter
	for _, w := range c.waiters {
		if !w.at.After(t) {
			due = append(due, w)
		} else {
			keep = append(keep, w)
		}
	}
	c.waiters = keep
	c.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, w := range due {
		w.ch <- t
	}
}

// ScaledClock runs Factor times faster than the wall clock from Start
// (benchmarks: a minute-long window passes in a second at Factor 60).
type ScaledClock struct {
	start  time.Time
	origin time.Time
	factor float64
}

// NewScaledClock reads origin at the moment of the call and runs factor times
// faster from there.
func NewScaledClock(origin time.Time, factor float64) *ScaledClock {
	if factor <= 0 {
		factor = 1
	}
	return &ScaledClock{start: time.Now(), origin: origin, factor: factor}
}

// Now is origin + factor × wall time elapsed.
func (c *ScaledClock) Now() time.Time {
	return c.origin.Add(time.Duration(float64(time.Since(c.start)) * c.factor))
}

// After waits d/factor of wall time.
func (c *ScaledClock) After(d time.Duration) <-chan time.Time {
	out := make(chan time.Time, 1)
	go func() {
		<-time.After(time.Duration(float64(d) / c.factor))
		out <- c.Now()
	}()
	return out
}
