package sender

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	json "github.com/goccy/go-json"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/dnd"
	"github.com/wxhub/wxhub/schemas"
)

// ErrNoStatus reports an outbound id with no status record (never accepted, or
// older than the bucket's TTL).
var ErrNoStatus = errors.New("sender: no status for this message")

// StatusStore keeps one schemas.MessageStatus per outbound message in the
// wxhub_status bucket, under StatusKey(id). The gateway writes "queued" when it
// accepts a push; the sender writes every later state. Safe for concurrent use.
type StatusStore struct {
	kv jetstream.KeyValue
}

// NewStatusStore wraps the wxhub_status bucket.
func NewStatusStore(kv jetstream.KeyValue) *StatusStore { return &StatusStore{kv: kv} }

// StatusKey is the KV key of an outbound id (bus.StatusKey).
func StatusKey(id string) string { return bus.StatusKey(id) }

// Get returns the status of outbound message id, or an error wrapping ErrNoStatus.
func (s *StatusStore) Get(ctx context.Context, id string) (schemas.MessageStatus, error) {
	e, err := s.kv.Get(ctx, StatusKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return schemas.MessageStatus{}, fmt.Errorf("%w: %s", ErrNoStatus, id)
	}
	if err != nil {
		return schemas.MessageStatus{}, fmt.Errorf("sender: status get %s: %w", id, err)
	}
	var st schemas.MessageStatus
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return schemas.MessageStatus{}, fmt.Errorf("sender: status decode %s: %w", id, err)
	}
	return st, nil
}

// Put stores st under st.ID (last write wins).
func (s *StatusStore) Put(ctx context.Context, st schemas.MessageStatus) error {
	if st.ID == "" {
		return fmt.Errorf("sender: status put: %w", errors.New("empty id"))
	}
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("sender: status encode: %w", err)
	}
	if _, err := s.kv.Put(ctx, StatusKey(st.ID), data); err != nil {
		return fmt.Errorf("sender: status put %s: %w", st.ID, err)
	}
	return nil
}

// keepsStatus reports whether the sender writes a status record (status) for
// out. Answers to an inbound event (data.in_reply_to set) get only "failed":
// NATS keeps an in-memory index entry for every KV key until its TTL (7 days),
// so a key per answer grows the server's memory at the answer rate, and nobody
// asks for an answer's status (the push API serves pushed messages; the
// dashboard's tracer infers an answer's fate from the sender's ack floor).
// Failures are rare and feed the dashboard's errors view. A replay from the
// DLQ keeps every record, so its outcome replaces the "failed" of the first try.
func keepsStatus(out schemas.Outbound, replay bool, status string) bool {
	return out.Data.InReplyTo == "" || replay || status == schemas.StatusFailed || status == schemas.StatusDropped
}

// DNDStore is the members' quiet-hours store (see package dnd).
type DNDStore = dnd.Store

// NewDNDStore wraps the wxhub_dnd bucket.
func NewDNDStore(kv jetstream.KeyValue) *DNDStore { return dnd.NewStore(kv) }

// ParseDNDCommand reads a do-not-disturb chat command (see dnd.ParseCommand).
func ParseDNDCommand(text string) (dnd.Command, dnd.Window, error) { return dnd.ParseCommand(text) }

// statusQueue writes the sender's status records off the send path. Writes for
// one id go through one shard in order, so "sent" is never overwritten by an
// older "queued" or "deferred"; the queue is bounded (a full shard makes the
// caller wait) and drained by close.
type statusQueue struct {
	store  *StatusStore
	log    *zap.Logger
	shards []chan statusWrite
	wg     sync.WaitGroup
}

// statusWrite is a record to put, or an update (read, change, compare-and-set)
// of one message's record; either way in order with the others of its id.
type statusWrite struct {
	st     schemas.MessageStatus
	update func(ctx context.Context) error
}

// statusShards writers in parallel; statusShardDepth records each may queue.
const (
	statusShards     = 8
	statusShardDepth = 1024
	statusPutTimeout = 10 * time.Second
)

func newStatusQueue(store *StatusStore, log *zap.Logger) *statusQueue {
	q := &statusQueue{store: store, log: log, shards: make([]chan statusWrite, statusShards)}
	for i := range q.shards {
		ch := make(chan statusWrite, statusShardDepth)
		q.shards[i] = ch
		q.wg.Add(1)
		go func() {
			defer q.wg.Done()
			for w := range ch {
				// Not the caller's context: a status accepted here is written
				// even while the sender shuts down.
				ctx, cancel := context.WithTimeout(context.Background(), statusPutTimeout)
				var err error
				if w.update != nil {
					err = w.update(ctx)
				} else {
					err = q.store.Put(ctx, w.st)
				}
				if err != nil {
					q.log.Warn("status put", zap.String("id", w.st.ID), zap.Error(err))
				}
				cancel()
			}
		}()
	}
	return q
}

func (q *statusQueue) put(st schemas.MessageStatus) {
	q.shard(st.ID) <- statusWrite{st: st}
}

// update runs f after every write of id queued before it (a "recalled" mark
// must land after the "sent" record it changes).
func (q *statusQueue) update(id string, f func(ctx context.Context) error) {
	q.shard(id) <- statusWrite{st: schemas.MessageStatus{ID: id}, update: f}
}

func (q *statusQueue) shard(id string) chan statusWrite {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return q.shards[h.Sum32()%uint32(len(q.shards))]
}

// close writes what is queued and stops the writers.
func (q *statusQueue) close() {
	for _, ch := range q.shards {
		close(ch)
	}
	q.wg.Wait()
}
