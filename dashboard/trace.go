package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
)

// DefaultSenderConsumer is the sender's durable consumer on WXHUB_OUT
// (sender.DefaultConsumer; the dashboard imports no other component).
const DefaultSenderConsumer = "sender"

// WithSenderConsumer names the sender's durable consumer on WXHUB_OUT (the
// sender's `consumer` setting), which the tracer reads for answers that keep
// no status record. Default DefaultSenderConsumer.
func WithSenderConsumer(name string) Option {
	return func(d *Dashboard) {
		if name != "" {
			d.senderConsumer = name
		}
	}
}

// ErrTraceQuery reports a tracer request without an id or a user.
var ErrTraceQuery = errors.New("dashboard: trace needs id or user")

// Hop is one place a message was seen: a stream message or a status record.
type Hop struct {
	Kind       string    `json:"kind"` // event, routed, outbound, dead_letter, status
	Stream     string    `json:"stream,omitempty"`
	Seq        uint64    `json:"seq,omitempty"`
	Subject    string    `json:"subject,omitempty"`
	Time       time.Time `json:"time"`
	MsgID      string    `json:"msg_id,omitempty"`
	ID         string    `json:"id,omitempty"` // the CloudEvents id
	TraceID    string    `json:"trace_id,omitempty"`
	Summary    string    `json:"summary"`
	Replay     bool      `json:"replay,omitempty"`
	Inferred   bool      `json:"inferred,omitempty"` // a status hop read from the sender's consumer, not a status record
	SinceFirst float64   `json:"since_first_ms"`
}

// Trace is the tracer's answer.
type Trace struct {
	ID        string            `json:"id,omitempty"`
	User      string            `json:"user,omitempty"`
	Hops      []Hop             `json:"hops"`
	Scanned   map[string]uint64 `json:"scanned"` // messages read per stream
	Truncated bool              `json:"truncated,omitempty"`
}

// maxUserHops bounds a by-user trace (a busy user has many messages).
const maxUserHops = 500

// rec is one scanned message reduced to what links messages together.
type rec struct {
	hop   Hop
	ids   []string // names this message answers to
	links []string // ids of messages it refers to (in_reply_to, a dead letter's original)
	users []string
}

// traceQuery reads the newest TraceScan messages of every stream and follows
// the links from the query: ids (Nats-Msg-Id, CloudEvents id, WeChat MsgId,
// dedup key), a reply's in_reply_to, a dead letter's original, and the W3C
// trace id that every hop carries in its traceparent header. By user, it lists
// every message from or to that user instead.
func (d *Dashboard) traceQuery(ctx context.Context, id, user string) (Trace, error) {
	id, user = strings.TrimSpace(id), strings.TrimSpace(user)
	if id == "" && user == "" {
		return Trace{}, ErrTraceQuery
	}
	tr := Trace{ID: id, User: user, Scanned: map[string]uint64{}, Hops: []Hop{}}
	var recs []rec
	for _, name := range streamNames {
		msgs, err := scanStream(ctx, d.bus, name, d.cfg.TraceScan)
		if err != nil {
			return tr, fmt.Errorf("dashboard: trace: scan %s: %w", name, err)
		}
		tr.Scanned[name] = uint64(len(msgs))
		for _, m := range msgs {
			recs = append(recs, decodeRec(name, m))
		}
	}
	matched := make([]bool, len(recs))
	if id != "" {
		keys := map[string]bool{id: true}
		traces := map[string]bool{}
		// Follow links to a fixed point; each round can only add, so at most len(recs) rounds.
		for changed := true; changed; {
			changed = false
			for i, r := range recs {
				if matched[i] || !r.matches(keys, traces) {
					continue
				}
				matched[i], changed = true, true
				for _, k := range append(r.ids, r.links...) {
					keys[k] = true
				}
				if r.hop.TraceID != "" {
					traces[r.hop.TraceID] = true
				}
			}
		}
	} else {
		for i, r := range recs {
			for _, u := range r.users {
				if u == user {
					matched[i] = true
				}
			}
		}
	}
	outs := map[string]Hop{} // outbound id -> its newest hop in WXHUB_OUT
	for i, r := range recs {
		if !matched[i] {
			continue
		}
		tr.Hops = append(tr.Hops, r.hop)
		if r.hop.Kind == "outbound" && r.hop.ID != "" && r.hop.Seq >= outs[r.hop.ID].Seq {
			outs[r.hop.ID] = r.hop
		}
	}
	tr.Hops = append(tr.Hops, d.statusHops(ctx, outs)...)
	sort.SliceStable(tr.Hops, func(i, j int) bool { return tr.Hops[i].Time.Before(tr.Hops[j].Time) })
	if len(tr.Hops) > maxUserHops {
		tr.Hops, tr.Truncated = tr.Hops[len(tr.Hops)-maxUserHops:], true
	}
	if len(tr.Hops) > 0 {
		first := tr.Hops[0].Time
		for i := range tr.Hops {
			tr.Hops[i].SinceFirst = float64(tr.Hops[i].Time.Sub(first).Microseconds()) / 1000
		}
	}
	return tr, nil
}

func (r rec) matches(keys, traces map[string]bool) bool {
	if r.hop.TraceID != "" && traces[r.hop.TraceID] {
		return true
	}
	for _, k := range r.ids {
		if keys[k] {
			return true
		}
	}
	for _, k := range r.links {
		if keys[k] {
			return true
		}
	}
	return false
}

// statusHops adds the sender's last word on each outbound message: its
// status record, or, for a message without one (answers keep only "failed",
// see docs/outbound.md#status), what the sender's consumer says of it.
func (d *Dashboard) statusHops(ctx context.Context, outs map[string]Hop) []Hop {
	if len(outs) == 0 {
		return nil
	}
	kv, err := d.bus.KV(ctx, bus.BucketStatus)
	if err != nil {
		d.log.Debug("trace: status bucket", zap.Error(err))
		return nil
	}
	var hops, missing []Hop
	for id, out := range outs {
		e, err := kv.Get(ctx, statusKey(id))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			missing = append(missing, out)
			continue
		}
		if err != nil {
			d.log.Debug("trace: status get", zap.String("id", id), zap.Error(err))
			continue
		}
		var st schemas.MessageStatus
		if json.Unmarshal(e.Value(), &st) != nil {
			continue
		}
		t := st.UpdatedAt
		if t.IsZero() {
			t = e.Created()
		}
		sum := st.Status
		switch {
		case st.Reason != "":
			sum += ": " + truncate(st.Reason, 200)
		case st.DeferredUntil != nil:
			sum += " until " + st.DeferredUntil.UTC().Format(time.RFC3339)
		case st.WeComMsgID != "":
			sum += " (WeCom msgid " + st.WeComMsgID + ")"
		}
		if st.Attempts > 1 {
			sum += fmt.Sprintf(" after %d attempts", st.Attempts)
		}
		hops = append(hops, Hop{Kind: "status", Time: t, ID: id, Summary: sum})
	}
	return append(hops, d.inferredHops(ctx, missing)...)
}

// inferredHops tells the fate of outbound messages without a status record
// from the sender's durable consumer on WXHUB_OUT, read once per trace. The
// sender acks a message only once WeCom accepted it or it is dead-lettered
// (which leaves a "failed" record and a DLQ hop), so a sequence at or below
// the ack floor was sent. Above the floor the sender may still hold it, or
// have acked it out of order (it sends by priority and recipient): not known.
func (d *Dashboard) inferredHops(ctx context.Context, outs []Hop) []Hop {
	var ci *jetstream.ConsumerInfo
	for _, o := range outs {
		if o.Stream == bus.StreamOut && o.Seq > 0 {
			c, err := d.bus.JS().Consumer(ctx, bus.StreamOut, d.senderConsumer)
			if err != nil {
				d.log.Debug("trace: sender consumer", zap.String("consumer", d.senderConsumer), zap.Error(err))
				return nil
			}
			ci = c.CachedInfo()
			break
		}
	}
	if ci == nil {
		return nil
	}
	hops := make([]Hop, 0, len(outs))
	for _, o := range outs {
		if o.Stream != bus.StreamOut || o.Seq == 0 {
			continue
		}
		h := Hop{Kind: "status", ID: o.ID, Inferred: true}
		switch {
		case o.Seq <= ci.AckFloor.Stream:
			// When exactly is not known; the hop sits right after the message.
			h.Time = o.Time
			h.Summary = fmt.Sprintf("sent: acked by the sender %q, so WeCom accepted it (no status record kept)", ci.Name)
		case o.Seq > ci.Delivered.Stream:
			h.Time = d.now()
			h.Summary = fmt.Sprintf("waiting in %s: the sender %q has not taken it yet", bus.StreamOut, ci.Name)
		default:
			h.Time = d.now()
			h.Summary = fmt.Sprintf("with the sender %q: not confirmed yet (its ack floor is seq %d; waiting for its turn, a retry or quiet hours, or sent and acked out of order)",
				ci.Name, ci.AckFloor.Stream)
		}
		hops = append(hops, h)
	}
	return hops
}

func statusKey(id string) string { return bus.StatusKey(id) }

type scanned struct {
	seq     uint64
	subject string
	time    time.Time
	header  nats.Header
	data    []byte
}

// scanStream reads the newest n messages of a stream, oldest first.
func scanStream(ctx context.Context, b *bus.Bus, name string, n int) ([]scanned, error) {
	s, err := b.JS().Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	st := info.State
	if st.Msgs == 0 {
		return nil, nil
	}
	start := st.FirstSeq
	if st.LastSeq >= uint64(n) && st.LastSeq-uint64(n)+1 > start {
		start = st.LastSeq - uint64(n) + 1
	}
	// A work-queue stream (WXHUB_ROUTE) refuses consumers that do not ack and
	// overlap its connectors' filters, so it is read message by message; it
	// holds only unfinished work and is small.
	if info.Config.Retention == jetstream.WorkQueuePolicy {
		return scanByGet(ctx, b, name, start, n, bus.SubjectRouteEvents)
	}
	c, err := b.JS().OrderedConsumer(ctx, name, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   start,
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if ci := c.CachedInfo(); ci != nil {
			_ = b.JS().DeleteConsumer(context.WithoutCancel(ctx), name, ci.Name)
		}
	}()
	var out []scanned
	for len(out) < n {
		// NoWait: the messages are stored already; a waiting pull would only
		// add its timeout when fewer than asked remain.
		batch, err := c.FetchNoWait(min(500, n-len(out)))
		if err != nil {
			return out, err
		}
		got, done := 0, false
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			got++
			out = append(out, scanned{md.Sequence.Stream, m.Subject(), md.Timestamp, m.Headers(), m.Data()})
			if md.NumPending == 0 || md.Sequence.Stream >= st.LastSeq {
				done = true
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return out, err
		}
		if done || got == 0 {
			break
		}
	}
	return out, nil
}

func scanByGet(ctx context.Context, b *bus.Bus, stream string, start uint64, n int, subject string) ([]scanned, error) {
	var out []scanned
	for m, err := range b.ReadStream(ctx, stream, subject, start) {
		if err != nil {
			return out, err
		}
		out = append(out, scanned{m.Sequence, m.Subject, m.Time, m.Header, m.Data})
		if len(out) >= n {
			break
		}
	}
	return out, nil
}

// traceID is the trace-id field of a traceparent header, or "".
func traceID(tp string) string {
	sc, err := bus.ParseTraceParent(tp)
	if err != nil {
		return ""
	}
	return sc.TraceID
}

func decodeRec(stream string, m scanned) rec {
	r := rec{hop: Hop{Stream: stream, Seq: m.seq, Subject: m.subject, Time: m.time,
		MsgID: m.header.Get(bus.HeaderMsgID), TraceID: traceID(m.header.Get(bus.HeaderTraceParent)),
		Replay: m.header.Get(bus.HeaderReplayOf) != ""}}
	add := func(ids ...string) {
		for _, s := range ids {
			if s != "" {
				r.ids = append(r.ids, s)
			}
		}
	}
	add(r.hop.MsgID)
	switch stream {
	case bus.StreamIn, bus.StreamRoute:
		r.hop.Kind = "event"
		if stream == bus.StreamRoute {
			r.hop.Kind = "routed"
		}
		var ev schemas.Event
		if json.Unmarshal(m.data, &ev) != nil {
			r.hop.Summary = "undecodable event"
			return r
		}
		r.hop.ID = ev.ID
		add(ev.ID, ev.Data.MsgID)
		r.users = []string{ev.Data.User}
		r.hop.Summary = eventSummary(ev)
		if c := m.header.Get(bus.HeaderConnector); c != "" {
			r.hop.Summary += " → connector " + c
		}
	case bus.StreamOut:
		r.hop.Kind = "outbound"
		var o schemas.Outbound
		if json.Unmarshal(m.data, &o) != nil {
			r.hop.Summary = "undecodable outbound message"
			return r
		}
		r.hop.ID = o.ID
		add(o.ID, o.Data.DedupKey)
		if o.Data.InReplyTo != "" {
			r.links = append(r.links, o.Data.InReplyTo)
		}
		r.users = recipients(o.Data.Body)
		r.hop.Summary = outboundSummary(o, r.users)
	case bus.StreamDLQ:
		r.hop.Kind = "dead_letter"
		var dl schemas.DeadLetter
		if json.Unmarshal(m.data, &dl) != nil {
			r.hop.Summary = "undecodable dead letter"
			return r
		}
		r.hop.ID = dl.ID
		add(dl.ID)
		dd := dl.Data
		if mid := dd.Headers[bus.HeaderMsgID]; mid != "" {
			r.links = append(r.links, mid)
		}
		if tid := traceID(dd.Headers[bus.HeaderTraceParent]); tid != "" && r.hop.TraceID == "" {
			r.hop.TraceID = tid
		}
		if body, err := bus.OriginalBytes(dd); err == nil {
			// The original is an event or an outbound message: link to its id
			// and take its user, so a dead letter shows in both kinds of trace.
			var orig struct {
				ID   string `json:"id"`
				Data struct {
					User      string          `json:"user"`
					InReplyTo string          `json:"in_reply_to"`
					Body      json.RawMessage `json:"body"`
				} `json:"data"`
			}
			if json.Unmarshal(body, &orig) == nil {
				for _, s := range []string{orig.ID, orig.Data.InReplyTo} {
					if s != "" {
						r.links = append(r.links, s)
					}
				}
				if orig.Data.User != "" {
					r.users = append(r.users, orig.Data.User)
				}
				r.users = append(r.users, recipients(orig.Data.Body)...)
			}
		}
		r.hop.Summary = fmt.Sprintf("dead letter at %s after %d attempts: %s", dd.Stage, dd.Attempts, truncate(dd.Reason, 200))
	}
	return r
}

func eventSummary(ev schemas.Event) string {
	t := strings.TrimPrefix(ev.Type, "wxhub.in.")
	if t == "" {
		t = ev.Data.MsgType
	}
	return fmt.Sprintf("%s from %s via %s/%s", t, ev.Data.User, ev.Data.Channel, ev.Data.App)
}

func outboundSummary(o schemas.Outbound, to []string) string {
	s := fmt.Sprintf("%s via %s to %s", o.Data.Kind, o.Data.App, strings.Join(to, ","))
	if o.Data.Priority != "" {
		s += " (" + o.Data.Priority + ")"
	}
	if o.Source != "" {
		s += " from " + o.Source
	}
	return s
}

// recipients reads touser ("a|b") from a WeCom send body; parties and tags
// are not users and are left out.
func recipients(body json.RawMessage) []string {
	var b struct {
		ToUser  string   `json:"touser"`
		UserIDs []string `json:"userids"` // update_template_card
	}
	if len(body) == 0 || json.Unmarshal(body, &b) != nil {
		return nil
	}
	var out []string
	for _, u := range strings.Split(b.ToUser, "|") {
		if u = strings.TrimSpace(u); u != "" && u != "@all" {
			out = append(out, u)
		}
	}
	return append(out, b.UserIDs...)
}

// trace: GET /dashboard/api/trace?id=... or ?user=...
func (d *Dashboard) trace(w http.ResponseWriter, r *http.Request, _ session) {
	q := r.URL.Query()
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	tr, err := d.traceQuery(ctx, q.Get("id"), q.Get("user"))
	switch {
	case errors.Is(err, ErrTraceQuery):
		writeError(w, http.StatusBadRequest, "give id= (a message id, event id or WeChat MsgId) or user= (a userid or openid)")
	case err != nil:
		writeError(w, http.StatusBadGateway, err.Error())
	default:
		writeJSON(w, http.StatusOK, tr)
	}
}
