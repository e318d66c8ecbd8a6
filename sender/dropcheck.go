package sender

import (
	"crypto/sha256"
	"encoding/json"
	"sync"
	"time"
)

// maxDupRecords bounds the duplicate record: past it the oldest entries are
// forgotten first (a drop of a message that old goes unreported).
const maxDupRecords = 100_000

// dupRecord remembers, per message/send body, the message that first sent it
// within WeCom's duplicate-check interval. WeCom answers a duplicate with
// errcode 0 and delivers nothing; only this record tells the hub that a
// different message with the same body (a repeated answer) was dropped. A
// retry of the same message is the duplicate check doing its job, not a drop.
// Safe for concurrent use.
type dupRecord struct {
	mu    sync.Mutex
	by    map[[32]byte]dupEntry
	order []dupAt // oldest first, for expiry and the bound
	max   int
}

type dupEntry struct {
	id    string
	until time.Time
}

type dupAt struct {
	key   [32]byte
	until time.Time
}

func newDupRecord(max int) *dupRecord {
	return &dupRecord{by: map[[32]byte]dupEntry{}, max: max}
}

// dupKey hashes the request as WeCom compares it: the app and the body (the
// top-level keys sorted by encoding/json; nested values as the connector wrote them).
func dupKey(app string, body map[string]json.RawMessage) [32]byte {
	b, _ := json.Marshal(body) // raw values: cannot fail once they were sent
	return sha256.Sum256(append([]byte(app+"\x00"), b...))
}

// sent records that message id sent the body with key at now and returns the
// id of an earlier, different message that sent the same body within
// interval: WeCom dropped this one as its duplicate. The window runs from the
// first send, as WeCom's does.
func (d *dupRecord) sent(key [32]byte, id string, now time.Time, interval time.Duration) (firstID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.order) > 0 && (!now.Before(d.order[0].until) || len(d.order) > d.max) {
		old := d.order[0]
		if e, ok := d.by[old.key]; ok && e.until.Equal(old.until) {
			delete(d.by, old.key)
		}
		d.order = d.order[1:]
	}
	if e, ok := d.by[key]; ok && now.Before(e.until) {
		if e.id != id {
			return e.id
		}
		return ""
	}
	until := now.Add(interval)
	d.by[key] = dupEntry{id: id, until: until}
	d.order = append(d.order, dupAt{key: key, until: until})
	return ""
}
