package sender

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"
)

// dupMargin is added to the duplicate-check interval when the guard forgets a
// content: WeCom's interval starts when it delivered, a moment after the
// guard recorded the send.
const dupMargin = time.Minute

// dupGuard decides which message/send requests carry enable_duplicate_check,
// so that neither an answer nor a notice is swallowed and a retry after an
// ambiguous failure still never shows twice, whether or not WeCom compares a
// flagged message with earlier unflagged ones:
//
//   - a message whose content (body and recipients) this sender has not sent
//     in the interval is flagged: nothing identical exists for WeCom to drop it for;
//   - a message repeating a content sent in the interval is not flagged, so it
//     is delivered (the same question asked twice gets two answers);
//   - a retry of a message is flagged exactly when its first attempt was: WeCom
//     then drops it if the first attempt got through after all.
//
// What it knows is this process's sends of the last interval: right after a
// start (or after forgetting contents to stay within Max), it flags nothing
// for one interval. Safe for concurrent use.
type dupGuard struct {
	interval time.Duration // WeCom's duplicate_check_interval
	max      int           // contents remembered at most

	mu      sync.Mutex
	since   time.Time // knowledge is complete from here
	entries map[string]dupEntry
	order   []dupSeen // oldest first, for expiry
}

type dupEntry struct {
	id      string // the last message sent with this content
	flagged bool
	at      time.Time
}

type dupSeen struct {
	key string
	at  time.Time
}

func newDupGuard(interval time.Duration, max int, start time.Time) *dupGuard {
	return &dupGuard{interval: interval, max: max, since: start, entries: map[string]dupEntry{}}
}

// flag reports whether message id, sending body through app, is to carry
// enable_duplicate_check, and records the send.
func (g *dupGuard) flag(now time.Time, app, id string, body map[string]json.RawMessage) bool {
	key := contentKey(app, body)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expire(now)
	e, seen := g.entries[key]
	switch {
	case seen && e.id == id:
		return e.flagged // a retry: flagged exactly when the first attempt was
	case seen, now.Sub(g.since) < g.interval+dupMargin:
		// A repeat within the interval, or a content this process cannot know
		// to be new: deliver it.
		g.put(key, dupEntry{id: id, at: now})
		return false
	default:
		g.put(key, dupEntry{id: id, flagged: true, at: now})
		return true
	}
}

func (g *dupGuard) put(key string, e dupEntry) {
	if _, ok := g.entries[key]; !ok && len(g.entries) >= g.max {
		// Forget the oldest content: from now on this process cannot tell
		// whether a content is new for one interval.
		old := g.order[0]
		g.order = g.order[1:]
		delete(g.entries, old.key)
		g.since = e.at
	}
	g.entries[key] = e
	g.order = append(g.order, dupSeen{key: key, at: e.at})
}

// expire forgets the contents last sent more than the interval (and margin) ago.
func (g *dupGuard) expire(now time.Time) {
	n := 0
	for ; n < len(g.order) && now.Sub(g.order[n].at) > g.interval+dupMargin; n++ {
		if e, ok := g.entries[g.order[n].key]; ok && !e.at.After(g.order[n].at) {
			delete(g.entries, g.order[n].key)
		}
	}
	if n > 0 {
		g.order = append(g.order[:0:0], g.order[n:]...)
	}
}

// contentKey identifies what WeCom's duplicate check compares: the app and
// the request's content, recipients included (flags and agentid are not content).
func contentKey(app string, body map[string]json.RawMessage) string {
	c := make(map[string]json.RawMessage, len(body))
	for k, v := range body {
		switch k {
		case "agentid", "enable_duplicate_check", "duplicate_check_interval":
		default:
			c[k] = v
		}
	}
	raw, _ := json.Marshal(c) // sorted keys
	sum := sha256.Sum256(raw)
	return app + "." + hex.EncodeToString(sum[:16])
}
