package sender

import (
	"errors"
	"fmt"
	"time"
)

// ErrNeverFits reports a request for more slots than a limit allows at all (a
// message to 40 members when the daily quota is 30): waiting would not help.
var ErrNeverFits = errors.New("sender: request exceeds the limit itself")

// rule is one "at most Limit in any Span" constraint. Res is the bucket width
// of its log: 0 keeps every hit's exact time (per-member windows, 30 entries);
// a wider bucket keeps hot, high-limit logs (10,000 calls a minute) small at the
// price of counting a bucket as long as any part of it is inside the window, so
// the log over-counts slightly and never under-counts.
type rule struct {
	Name  string
	Limit int
	Span  time.Duration
	Res   time.Duration
}

// bucket is [start in unix ms, hits].
type bucket [2]int64

// ledger is a sliding-window log for one key (a member, a corp API) holding one
// log per rule. It is the value stored in KV, so its JSON is kept short.
type ledger struct {
	Logs map[string][]bucket `json:"l"`
}

// expiry is the instant a bucket stops counting for r. margin covers the time a
// call spends between our clock reading and WeCom's (request latency, clock
// granularity): a hit keeps its slot margin longer than the window.
func (r rule) expiry(b bucket, margin time.Duration) int64 {
	return b[0] + (r.Res + r.Span + margin).Milliseconds()
}

// wait answers how long until n more hits fit under every rule at now; 0 means
// now. It never blocks: the caller decides what to do meanwhile.
func (l *ledger) wait(now time.Time, rules []rule, n int, margin time.Duration) (time.Duration, error) {
	d, _, err := l.waitRule(now, rules, n, margin)
	return d, err
}

// waitRule is wait that also names the rule that makes the wait longest.
func (l *ledger) waitRule(now time.Time, rules []rule, n int, margin time.Duration) (time.Duration, string, error) {
	ms := now.UnixMilli()
	var longest time.Duration
	var which string
	for _, r := range rules {
		if r.Limit <= 0 {
			continue // disabled
		}
		if n > r.Limit {
			return 0, r.Name, fmt.Errorf("%w: %d > %s %d", ErrNeverFits, n, r.Name, r.Limit)
		}
		log := l.Logs[r.Name]
		total := int64(0)
		first := len(log)
		for i, b := range log {
			if r.expiry(b, margin) > ms {
				if first == len(log) {
					first = i
				}
				total += b[1]
			}
		}
		excess := total + int64(n) - int64(r.Limit)
		if excess <= 0 {
			continue
		}
		// The oldest buckets must expire until excess hits are freed.
		freed := int64(0)
		for _, b := range log[first:] {
			freed += b[1]
			if freed >= excess {
				if d := time.Duration(r.expiry(b, margin)-ms) * time.Millisecond; d > longest {
					longest, which = d, r.Name
				}
				break
			}
		}
	}
	return longest, which, nil
}

// used is the number of hits that count against r at now.
func (l *ledger) used(now time.Time, r rule, margin time.Duration) int64 {
	return usedIn(l.Logs[r.Name], now, r, margin)
}

// usedIn is the number of hits in log that count against r at now.
func usedIn(log []bucket, now time.Time, r rule, margin time.Duration) int64 {
	ms := now.UnixMilli()
	var total int64
	for _, b := range log {
		if r.expiry(b, margin) > ms {
			total += b[1]
		}
	}
	return total
}

// add records n hits at now under every rule and drops expired buckets.
func (l *ledger) add(now time.Time, rules []rule, n int, margin time.Duration) {
	if l.Logs == nil {
		l.Logs = map[string][]bucket{}
	}
	ms := now.UnixMilli()
	for _, r := range rules {
		if r.Limit <= 0 {
			continue
		}
		start := ms
		if res := r.Res.Milliseconds(); res > 0 {
			start -= start % res
		}
		log := l.prune(r, ms, margin)
		if k := len(log); k > 0 && log[k-1][0] == start {
			log[k-1][1] += int64(n)
		} else {
			// Clock steps backwards keep the log sorted enough: the bucket is
			// appended and counts until its own expiry, which is all wait needs.
			log = append(log, bucket{start, int64(n)})
		}
		l.Logs[r.Name] = log
	}
}

// remove takes back n hits recorded by add at now (a reservation rolled back
// because another key of the same send had no room).
func (l *ledger) remove(now time.Time, rules []rule, n int) {
	ms := now.UnixMilli()
	for _, r := range rules {
		if r.Limit <= 0 {
			continue
		}
		start := ms
		if res := r.Res.Milliseconds(); res > 0 {
			start -= start % res
		}
		log := l.Logs[r.Name]
		for i := len(log) - 1; i >= 0; i-- {
			if log[i][0] == start {
				log[i][1] -= int64(n)
				if log[i][1] <= 0 {
					log = append(log[:i], log[i+1:]...)
				}
				break
			}
		}
		l.Logs[r.Name] = log
	}
}

func (l *ledger) prune(r rule, ms int64, margin time.Duration) []bucket {
	log := l.Logs[r.Name]
	i := 0
	for i < len(log) && r.expiry(log[i], margin) <= ms {
		i++
	}
	return append(log[:0:0], log[i:]...)
}

// empty reports whether no rule has a live bucket at now (the key may be deleted).
func (l *ledger) empty(now time.Time, rules []rule, margin time.Duration) bool {
	return noneLive(func(name string) []bucket { return l.Logs[name] }, now, rules, margin)
}

// noneLive reports whether no rule's log has a live bucket at now.
func noneLive(logOf func(name string) []bucket, now time.Time, rules []rule, margin time.Duration) bool {
	ms := now.UnixMilli()
	for _, r := range rules {
		for _, b := range logOf(r.Name) {
			if r.expiry(b, margin) > ms {
				return false
			}
		}
	}
	return true
}

// usageView is a decoded ledger kept for the limit-usage scrape, flat and free
// of pointers: for each log a header bucket {its name packed in an int64, its
// length}, then its buckets. The collector marks one object per cached ledger
// and scans none, instead of a map, a slice per log and their headers.
type usageView []bucket

// newUsageView flattens lg; nil when a log name does not fit in 8 bytes (the
// rule names are one letter).
func newUsageView(lg *ledger) usageView {
	n := 0
	for name, log := range lg.Logs {
		if len(name) > 8 {
			return nil
		}
		n += 1 + len(log)
	}
	v := make(usageView, 0, n)
	for name, log := range lg.Logs {
		v = append(v, bucket{packName(name), int64(len(log))})
		v = append(v, log...)
	}
	return v
}

// packName packs a name of at most 8 bytes into an int64, one byte each.
func packName(name string) int64 {
	var p int64
	for i := range len(name) {
		p |= int64(name[i]) << (8 * i)
	}
	return p
}

// log returns the buckets of the named log (a subslice, nothing copied).
func (v usageView) log(name string) []bucket {
	if len(name) > 8 {
		return nil
	}
	key := packName(name)
	for i := 0; i < len(v); {
		n := int(v[i][1])
		if v[i][0] == key {
			return v[i+1 : i+1+n]
		}
		i += 1 + n
	}
	return nil
}

func (v usageView) used(now time.Time, r rule, margin time.Duration) int64 {
	return usedIn(v.log(r.Name), now, r, margin)
}

func (v usageView) empty(now time.Time, rules []rule, margin time.Duration) bool {
	return noneLive(v.log, now, rules, margin)
}
