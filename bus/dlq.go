package bus

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxhub/wxhub/schemas"
)

// ErrDLQNotFound reports a DLQ sequence that does not exist (replayed, dropped or expired).
var ErrDLQNotFound = errors.New("bus: dead letter not found")

// maxReason bounds the stored reason; a handler may return a whole HTTP body.
const maxReason = 4096

// DLQEntry is one dead letter as stored in WXHUB_DLQ.
type DLQEntry struct {
	Seq     uint64             `json:"seq"`     // WXHUB_DLQ sequence: the handle for Get/Replay/Drop
	Subject string             `json:"subject"` // wxhub.dlq.<stage>
	Stored  time.Time          `json:"stored"`
	Letter  schemas.DeadLetter `json:"letter"`
}

// DLQFilter selects dead letters for ListDLQ.
type DLQFilter struct {
	Stage string // only this stage ("router", "connector:erp", "sender"); empty: all
	After uint64 // start after this sequence (paging); 0: from the oldest
	Limit int    // at most this many; default 100, at most 1000
}

// DeadLetter copies msg to wxhub.dlq.<stage> with the reason and the attempts.
// The DLQ message id is derived from the stage and the original stream sequence,
// so dead-lettering the same delivery twice (a crash before the Term) stores
// one entry. It does not ack or term msg: the caller does, after this returns nil.
func (b *Bus) DeadLetter(ctx context.Context, stage string, msg jetstream.Msg, reason string, attempts int) error {
	var id string
	if md, err := msg.Metadata(); err == nil {
		id = "dlq/" + stage + "/" + md.Stream + "/" + strconv.FormatUint(md.Sequence.Stream, 10)
	} else if mid := msg.Headers().Get(HeaderMsgID); mid != "" {
		id = "dlq/" + stage + "/" + mid
	} else {
		sum := sha256.Sum256(msg.Data())
		id = "dlq/" + stage + "/" + hex.EncodeToString(sum[:16])
	}
	if tp := msg.Headers().Get(HeaderTraceParent); tp != "" && TraceParentFrom(ctx) == "" {
		ctx = WithTraceParent(ctx, ChildTraceParent(tp))
	}
	return b.PublishDeadLetter(ctx, id, schemas.DeadLetterData{
		Stage:    stage,
		Reason:   reason,
		Attempts: attempts,
		Subject:  msg.Subject(),
		Headers:  flatHeaders(msg.Headers()),
		Original: msg.Data(),
	})
}

// PublishDeadLetter stores d in the DLQ under msgID (the de-duplication id).
// Original may be any bytes: a body that is not JSON is kept as base64.
func (b *Bus) PublishDeadLetter(ctx context.Context, msgID string, d schemas.DeadLetterData) error {
	if len(d.Reason) > maxReason {
		d.Reason = d.Reason[:maxReason] + "…"
	}
	if !json.Valid(d.Original) {
		enc, _ := json.Marshal(base64.StdEncoding.EncodeToString(d.Original))
		d.Original, d.Encoding = enc, "base64"
	}
	dl := schemas.DeadLetter{
		SpecVersion:     schemas.SpecVersion,
		ID:              msgID,
		Source:          "wxhub/" + d.Stage,
		Type:            "wxhub.dlq." + d.Stage,
		Time:            time.Now().UTC(),
		DataContentType: "application/json",
		Data:            d,
	}
	if _, err := b.PublishJSON(ctx, DLQSubject(d.Stage), msgID, schemas.SchemaDeadLetter, dl); err != nil {
		return fmt.Errorf("bus: dead letter (stage %s): %w", d.Stage, err)
	}
	return nil
}

// OriginalBytes returns the original body of a dead letter, decoding base64.
func OriginalBytes(d schemas.DeadLetterData) ([]byte, error) {
	if d.Encoding != "base64" {
		return d.Original, nil
	}
	var s string
	if err := json.Unmarshal(d.Original, &s); err != nil {
		return nil, fmt.Errorf("bus: dead letter original: %w", err)
	}
	return base64.StdEncoding.DecodeString(s)
}

// ListDLQ returns dead letters oldest first, paged by DLQFilter.After.
func (b *Bus) ListDLQ(ctx context.Context, f DLQFilter) ([]DLQEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	filter := SubjectDLQAll
	if f.Stage != "" {
		filter = DLQSubject(f.Stage)
	}
	var out []DLQEntry
	next := f.After + 1
	for raw, err := range b.ReadStream(ctx, StreamDLQ, filter, next) {
		if err != nil {
			return out, fmt.Errorf("bus: dlq list from %d: %w", next, err)
		}
		e, err := decodeDLQ(raw)
		if err != nil {
			return out, err
		}
		out = append(out, e)
		if next = raw.Sequence + 1; len(out) == f.Limit {
			break
		}
	}
	return out, nil
}

// GetDLQ returns one dead letter; ErrDLQNotFound if it is gone.
func (b *Bus) GetDLQ(ctx context.Context, seq uint64) (DLQEntry, error) {
	st, err := b.js.Stream(ctx, StreamDLQ)
	if err != nil {
		return DLQEntry{}, fmt.Errorf("bus: dlq: %w", err)
	}
	raw, err := st.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return DLQEntry{}, fmt.Errorf("%w: seq %d", ErrDLQNotFound, seq)
	}
	if err != nil {
		return DLQEntry{}, fmt.Errorf("bus: dlq get %d: %w", seq, err)
	}
	return decodeDLQ(raw)
}

// ReplayDLQ republishes the original message to its original subject, then
// deletes the dead letter. The replay's Nats-Msg-Id is derived from the
// original id and the DLQ sequence: a replay retried after a crash between
// publish and delete is stored once, while the original id's earlier copy does
// not swallow the replay as a duplicate.
func (b *Bus) ReplayDLQ(ctx context.Context, seq uint64) error {
	e, err := b.GetDLQ(ctx, seq)
	if err != nil {
		return err
	}
	d := e.Letter.Data
	if d.Subject == "" || strings.HasPrefix(d.Subject, SubjectDLQPrefix+".") {
		return fmt.Errorf("bus: dlq %d: cannot replay to subject %q", seq, d.Subject)
	}
	body, err := OriginalBytes(d)
	if err != nil {
		return fmt.Errorf("bus: dlq %d: %w", seq, err)
	}
	h := nats.Header{}
	for k, v := range d.Headers {
		if strings.HasPrefix(k, "Nats-") { // server-owned or expectation headers would fail the replay
			continue
		}
		h.Set(k, v)
	}
	seqs := strconv.FormatUint(seq, 10)
	h.Set(HeaderReplayOf, seqs)
	id := "replay/" + seqs
	if orig := d.Headers[HeaderMsgID]; orig != "" {
		id = orig + "/" + id
	}
	if _, err := b.Publish(ctx, d.Subject, id, h, body); err != nil {
		return fmt.Errorf("bus: dlq %d replay: %w", seq, err)
	}
	return b.DropDLQ(ctx, seq)
}

// DropDLQ deletes a dead letter. Dropping one that is already gone is not an error.
func (b *Bus) DropDLQ(ctx context.Context, seq uint64) error {
	st, err := b.js.Stream(ctx, StreamDLQ)
	if err != nil {
		return fmt.Errorf("bus: dlq: %w", err)
	}
	err = st.DeleteMsg(ctx, seq)
	if err == nil {
		return nil
	}
	// The delete error of a missing message is not typed; ask whether it is gone.
	if _, gerr := st.GetMsg(ctx, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
		return nil
	}
	return fmt.Errorf("bus: dlq drop %d: %w", seq, err)
}

func decodeDLQ(raw *jetstream.RawStreamMsg) (DLQEntry, error) {
	e := DLQEntry{Seq: raw.Sequence, Subject: raw.Subject, Stored: raw.Time}
	if err := json.Unmarshal(raw.Data, &e.Letter); err != nil {
		return e, fmt.Errorf("bus: dlq %d: decode: %w", raw.Sequence, err)
	}
	return e, nil
}

func flatHeaders(h nats.Header) map[string]string {
	if len(h) == 0 {
		return nil
	}
	m := make(map[string]string, len(h))
	for k, v := range h {
		if len(v) > 0 {
			m[k] = v[0]
		}
	}
	return m
}
