package sender

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go/jetstream"
)

// BucketLimits is the KV bucket holding the send-limit ledgers shared by all
// sender replicas. The sender declares it itself (TTL 25h: the longest window is
// the daily quota).
const BucketLimits = "wxhub_limits"

// limitsTTL outlives the longest window (a calendar day) plus skew.
const limitsTTL = 25 * time.Hour

// claim asks for n slots under rules on one ledger key. daily claims use the
// calendar-day counter instead of a sliding log.
type claim struct {
	key    string
	rules  []rule
	n      int
	global bool // a corp-wide key: when full, nothing else can be sent either
	daily  int  // > 0: a calendar-day quota of this many, rules unused

	fullRule string // set by reserve: the rule that had no room (for metrics)
}

// limiter reserves send slots in KV ledgers with compare-and-set, so that every
// replica sees every other replica's sends: a slot is written before the call
// is made, and a write that lost a race is redone on the fresh value.
//
// It caches each key's last value and revision: with one replica (or disjoint
// members) a reservation costs one KV Update per key, with no read.
type limiter struct {
	kv     jetstream.KeyValue
	margin time.Duration
	loc    *time.Location

	mu     sync.Mutex
	cache  map[string]cachedEntry
	queues map[string]*keyQueue // keys with a commit in flight
}

type cachedEntry struct {
	val  []byte
	rev  uint64    // 0: key absent
	view usageView // val decoded for the scrape: from the commit, or filled on demand by snapshot; read-only
}

type dailyCount struct {
	Day string `json:"d"`
	N   int    `json:"n"`
}

func newLimiter(kv jetstream.KeyValue, margin time.Duration, loc *time.Location) *limiter {
	return &limiter{kv: kv, margin: margin, loc: loc, cache: map[string]cachedEntry{}, queues: map[string]*keyQueue{}}
}

// reserve takes every claim's slots or none. It returns wait > 0 and which claim
// was full when a claim has no room now; the slots already taken for earlier
// claims are given back.
func (l *limiter) reserve(ctx context.Context, now time.Time, claims []claim) (time.Duration, *claim, error) {
	for i := range claims {
		c := &claims[i]
		w, err := l.reserveOne(ctx, now, c)
		if err == nil && w == 0 {
			continue
		}
		for j := i - 1; j >= 0; j-- {
			if rerr := l.release(ctx, now, &claims[j]); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		return w, c, err
	}
	return 0, nil, nil
}

func (l *limiter) reserveOne(ctx context.Context, now time.Time, c *claim) (time.Duration, error) {
	var wait time.Duration
	err := l.update(ctx, c.key, func(cur []byte) ([]byte, *ledger, error) {
		wait, c.fullRule = 0, "" // a redo on a fresh value decides anew
		if c.daily > 0 {
			next, err := l.takeDaily(cur, now, c, &wait)
			return next, nil, err
		}
		lg := &ledger{}
		if len(cur) > 0 {
			if err := json.Unmarshal(cur, lg); err != nil {
				lg = &ledger{} // a corrupt ledger must not stop sending; it is rewritten
			}
		}
		w, which, err := lg.waitRule(now, c.rules, c.n, l.margin)
		if err != nil || w > 0 {
			wait, c.fullRule = w, which
			return nil, nil, err
		}
		lg.add(now, c.rules, c.n, l.margin)
		next, err := json.Marshal(lg)
		return next, lg, err
	})
	return wait, err
}

func (l *limiter) takeDaily(cur []byte, now time.Time, c *claim, wait *time.Duration) ([]byte, error) {
	if c.n > c.daily {
		return nil, fmt.Errorf("%w: %d recipients > daily quota %d", ErrNeverFits, c.n, c.daily)
	}
	var d dailyCount
	if len(cur) > 0 {
		_ = json.Unmarshal(cur, &d)
	}
	today := now.In(l.loc).Format("20060102")
	if d.Day != today {
		d = dailyCount{Day: today}
	}
	if d.N+c.n > c.daily {
		lt := now.In(l.loc)
		y, m, dd := lt.Date()
		*wait = time.Date(y, m, dd+1, 0, 0, 0, 0, l.loc).Sub(now)
		return nil, nil
	}
	d.N += c.n
	return json.Marshal(&d)
}

// release gives back a reservation made at now (best effort: a lost release only
// makes the window look fuller than it is, never emptier).
func (l *limiter) release(ctx context.Context, now time.Time, c *claim) error {
	return l.update(ctx, c.key, func(cur []byte) ([]byte, *ledger, error) {
		if len(cur) == 0 {
			return nil, nil, nil
		}
		if c.daily > 0 {
			var d dailyCount
			if json.Unmarshal(cur, &d) != nil || d.N < c.n {
				return nil, nil, nil
			}
			d.N -= c.n
			next, err := json.Marshal(&d)
			return next, nil, err
		}
		lg := &ledger{}
		if json.Unmarshal(cur, lg) != nil {
			return nil, nil, nil
		}
		lg.remove(now, c.rules, c.n)
		next, err := json.Marshal(lg)
		return next, lg, err
	})
}

// updateFunc computes a key's next value from its current one. It returns
// nil bytes for "no change" and, for a sliding-window ledger, the ledger the
// bytes encode: the cache keeps a flat view of it (usageView) for the
// limit-usage gauge, which would otherwise decode every key changed since the
// last scrape (a JSON decode per message sent). The returned ledger is not
// touched again by fn.
type updateFunc func(cur []byte) (next []byte, parsed *ledger, err error)

// keyOp is one read-modify-write waiting for its key's next commit.
type keyOp struct {
	fn   updateFunc
	done chan opResult
}

type opResult struct {
	err  error
	lead bool // not a result: the op is to commit the key's queue itself
}

// keyQueue serialises a key's writes inside this replica: one commit in flight
// per key, and whatever arrives meanwhile is committed together by the next one
// (group commit). Without it, concurrent workers reserving on the hot corp key
// would lose CAS races to each other, and every claim would cost its own write.
type keyQueue struct {
	ops []*keyOp
}

// update runs fn on the key's value and writes the result with compare-and-set,
// retrying on a lost race. fn returning nil bytes means "no change". fn may be
// called more than once (a lost race redoes it on the fresh value), so it must
// set its side effects anew on each call.
func (l *limiter) update(ctx context.Context, key string, fn updateFunc) error {
	op := &keyOp{fn: fn, done: make(chan opResult, 1)}
	l.mu.Lock()
	q, busy := l.queues[key]
	if !busy {
		q = &keyQueue{}
		l.queues[key] = q
	}
	q.ops = append(q.ops, op)
	l.mu.Unlock()
	if busy {
		r := <-op.done // no ctx case: the leader may already be applying op
		if !r.lead {
			return r.err
		}
	}
	// This goroutine commits the whole queue (op included), then hands the lead
	// to the next waiter, so no caller commits for others more than once.
	l.mu.Lock()
	batch := q.ops
	q.ops = nil
	l.mu.Unlock()
	errs := l.commit(ctx, key, batch)
	l.mu.Lock()
	if len(q.ops) > 0 {
		q.ops[0].done <- opResult{lead: true}
	} else {
		delete(l.queues, key)
	}
	l.mu.Unlock()
	var mine error
	for i, o := range batch {
		if o == op {
			mine = errs[i]
		} else {
			o.done <- opResult{err: errs[i]}
		}
	}
	return mine
}

// commit applies batch in order to the key's value and writes the result once.
// It returns each op's error.
func (l *limiter) commit(ctx context.Context, key string, batch []*keyOp) []error {
	errs := make([]error, len(batch))
	l.mu.Lock()
	ce, ok := l.cache[key]
	l.mu.Unlock()
	fresh := false
	for attempt := 0; attempt < 50; attempt++ {
		if !ok {
			e, err := l.kv.Get(ctx, key)
			switch {
			case errors.Is(err, jetstream.ErrKeyNotFound):
				ce = cachedEntry{}
			case err != nil:
				return fill(errs, fmt.Errorf("sender: limits get %s: %w", key, err))
			default:
				ce = cachedEntry{val: e.Value(), rev: e.Revision()}
			}
			ok, fresh = true, true
		}
		var parsed *ledger // decoded next value, when the update gave one
		cur, changed, staleNo := ce.val, false, false
		for i, o := range batch {
			next, lg, err := o.fn(cur)
			errs[i] = err
			switch {
			case err != nil:
			case next == nil:
				// Our copy may be stale in the other direction (a release by
				// another replica); a "full" answer is worth one fresh read.
				staleNo = staleNo || !fresh
			default:
				cur, parsed, changed = next, lg, true
			}
		}
		if staleNo {
			ok = false
			continue
		}
		if !changed {
			return errs
		}
		var rev uint64
		var err error
		if ce.rev == 0 {
			rev, err = l.kv.Create(ctx, key, cur)
		} else {
			rev, err = l.kv.Update(ctx, key, cur, ce.rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyNotFound) {
			ok = false // another replica wrote first: redo on its value
			continue
		}
		if err != nil {
			return fill(errs, fmt.Errorf("sender: limits update %s: %w", key, err))
		}
		var view usageView
		if parsed != nil {
			view = newUsageView(parsed)
		}
		l.mu.Lock()
		l.cache[key] = cachedEntry{val: cur, rev: rev, view: view}
		l.mu.Unlock()
		return errs
	}
	return fill(errs, fmt.Errorf("sender: limits update %s: too much contention", key))
}

func fill(errs []error, err error) []error {
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// idleKey is a cached ledger with no live bucket, as a scrape saw it.
type idleKey struct {
	key string
	rev uint64
}

// forget drops idle ledgers from the cache unless a commit changed them since.
// The value stays in KV: the next reservation on the key reads it again, one
// KV Get more for a member not messaged within the longest window.
func (l *limiter) forget(idle []idleKey) {
	if len(idle) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range idle {
		if e, ok := l.cache[k.key]; ok && e.rev == k.rev {
			delete(l.cache, k.key)
		}
	}
}

// keyedEntry is one cached ledger with its key.
type keyedEntry struct {
	key string
	cachedEntry
}

// snapshot returns the cached ledgers, decoded (for wxhub_sender_limit_usage).
// Commits keep what they wrote decoded; a value read from KV is decoded here
// once and kept until the key changes. A slice, not a map: it is rebuilt on
// every scrape, and a slice is the cheaper copy.
func (l *limiter) snapshot() []keyedEntry {
	l.mu.Lock()
	out := make([]keyedEntry, 0, len(l.cache))
	for k, e := range l.cache {
		out = append(out, keyedEntry{k, e})
	}
	l.mu.Unlock()
	var fresh []keyedEntry
	for i, e := range out {
		if e.view != nil || len(e.val) == 0 || strings.HasPrefix(e.key, "daily.") {
			continue
		}
		var lg ledger
		if json.Unmarshal(e.val, &lg) != nil {
			continue
		}
		if out[i].view = newUsageView(&lg); out[i].view == nil {
			continue
		}
		fresh = append(fresh, out[i])
	}
	if len(fresh) > 0 {
		l.mu.Lock()
		for _, e := range fresh {
			if cur, ok := l.cache[e.key]; ok && cur.rev == e.rev && cur.view == nil {
				l.cache[e.key] = e.cachedEntry
			}
		}
		l.mu.Unlock()
	}
	return out
}
