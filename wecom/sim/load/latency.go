package load

import (
	"math"
	"sort"
	"sync"
	"time"
)

// Latencies keeps every sample (a run is bounded, so they fit) and answers
// exact percentiles. Safe for concurrent Add.
type Latencies struct {
	mu     sync.Mutex
	s      []time.Duration
	sorted bool
}

// NewLatencies makes room for n samples.
func NewLatencies(n int) *Latencies {
	return &Latencies{s: make([]time.Duration, 0, n)}
}

// Add records one sample.
func (l *Latencies) Add(d time.Duration) {
	l.mu.Lock()
	l.s = append(l.s, d)
	l.sorted = false
	l.mu.Unlock()
}

// Count is the number of samples.
func (l *Latencies) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.s)
}

// Percentile answers the sample at or below which p percent of the samples lie
// (nearest rank); 0 when there are none.
func (l *Latencies) Percentile(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.s) == 0 {
		return 0
	}
	if !l.sorted {
		sort.Slice(l.s, func(i, j int) bool { return l.s[i] < l.s[j] })
		l.sorted = true
	}
	rank := int(math.Ceil(p / 100 * float64(len(l.s))))
	if rank < 1 {
		rank = 1
	}
	if rank > len(l.s) {
		rank = len(l.s)
	}
	return l.s[rank-1]
}

// Max is the largest sample.
func (l *Latencies) Max() time.Duration { return l.Percentile(100) }

func sortStrings(s []string) { sort.Strings(s) }

// Merge adds every sample of o.
func (l *Latencies) Merge(o *Latencies) {
	o.mu.Lock()
	s := append([]time.Duration(nil), o.s...)
	o.mu.Unlock()
	l.mu.Lock()
	l.s = append(l.s, s...)
	l.sorted = false
	l.mu.Unlock()
}
