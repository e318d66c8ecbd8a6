package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

type testCase struct {
	name   string
	legacy bool
	run    func(t *testing.T, h *harness)
}

var cases = []testCase{
	{"replies_to_samples", false, repliesToSamples},
	{"retries_legacy_timeout_then_succeeds", true, func(t *testing.T, h *harness) { retriesThenSucceeds(t, h, ModeTimeout) }},
	{"retries_legacy_500_then_succeeds", true, func(t *testing.T, h *harness) { retriesThenSucceeds(t, h, Mode500) }},
	{"poison_dead_lettered_after_max_deliver", true, poisonAfterMaxDeliver},
	{"unparsable_event_dead_lettered_user_not_blocked", false, unparsableEvent},
	{"redelivered_event_not_replied_twice", false, redeliveredNotRepliedTwice},
	{"shutdown_loses_nothing_in_flight", true, shutdownLosesNothing},
	{"credentials_cannot_read_other_connectors", false, cannotReadOthers},
}

func repliesToSamples(t *testing.T, h *harness) {
	h.start()
	var evs []schemas.Event
	for _, s := range h.c.Samples {
		ev := h.event(s.Event, "")
		ev.TraceParent = bus.NewTraceParent()
		h.route(ev)
		evs = append(evs, ev)
	}
	for i, s := range h.c.Samples {
		out := h.waitReplies(s, evs[i])
		want, _ := bus.ParseTraceParent(evs[i].TraceParent)
		for _, o := range out {
			got, err := bus.ParseTraceParent(o.TraceParent)
			if err != nil || got.TraceID != want.TraceID {
				t.Errorf("sample %q: reply %s traceparent %q does not continue the event's trace %s", s.Name, o.ID, o.TraceParent, want.TraceID)
			}
		}
	}
	h.waitRouteEmpty("samples acked")
	h.wantDLQ(0)
}

func retriesThenSucceeds(t *testing.T, h *harness, mode Mode) {
	h.start()
	calls := h.c.Legacy.Calls()
	h.c.Legacy.Fail(mode, 2)
	ev := h.event(h.c.LegacySample.Event, "")
	h.route(ev)
	h.waitReplies(h.c.LegacySample, ev)
	h.waitRouteEmpty("event acked after the legacy system came back")
	if n := h.c.Legacy.Calls() - calls; n < 3 {
		t.Errorf("legacy system called %d times, want >= 3 (2 failures, then success)", n)
	}
	h.wantDLQ(0)
}

func poisonAfterMaxDeliver(t *testing.T, h *harness) {
	h.start()
	calls := h.c.Legacy.Calls()
	h.c.Legacy.Fail(Mode500, 0)
	defer h.c.Legacy.Recover()
	ev := h.event(h.c.LegacySample.Event, "")
	h.route(ev)
	var e bus.DLQEntry
	h.eventually("poison event in the DLQ", func() error {
		l := h.dlq()
		if len(l) == 0 {
			return errors.New("DLQ empty")
		}
		e = l[0]
		return nil
	})
	d := e.Letter.Data
	var orig schemas.Event
	_ = json.Unmarshal(d.Original, &orig)
	if d.Stage != "connector:"+h.c.Name || orig.ID != ev.ID || d.Attempts != h.c.MaxDeliver || d.Reason == "" {
		t.Errorf("dead letter: stage %q, original id %q, attempts %d, reason %q; want connector:%s, %s, %d, a reason",
			d.Stage, orig.ID, d.Attempts, d.Reason, h.c.Name, ev.ID, h.c.MaxDeliver)
	}
	if n := h.c.Legacy.Calls() - calls; n < h.c.MaxDeliver {
		t.Errorf("legacy system called %d times, want %d (one per delivery)", n, h.c.MaxDeliver)
	}
	h.waitRouteEmpty("poison event terminated")
	if got := len(h.dlq()); got != 1 {
		t.Errorf("DLQ has %d entries, want 1", got)
	}
}

func unparsableEvent(t *testing.T, h *harness) {
	h.start()
	s := h.c.Samples[0]
	ev := h.event(s.Event, "")
	p := bus.Partition(ev.Data.User, h.c.Partitions)
	hd := nats.Header{}
	hd.Set(bus.HeaderSchema, schemas.SchemaEvent)
	if _, err := h.hub.Publish(h.ctx(), bus.RouteSubject(h.c.Name, p), "garbage-"+ev.ID, hd, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	// The same user's next event must not be stuck behind the garbage.
	h.route(ev)
	h.waitReplies(s, ev)
	h.eventually("garbage dead-lettered", func() error {
		if n := len(h.dlq()); n != 1 {
			return fmt.Errorf("DLQ has %d entries", n)
		}
		return nil
	})
	orig, err := bus.OriginalBytes(h.dlq()[0].Letter.Data)
	if err != nil || string(orig) != "{not json" {
		t.Errorf("dead letter keeps %q (%v), want the original bytes", orig, err)
	}
	h.waitRouteEmpty("nothing left")
}

func redeliveredNotRepliedTwice(t *testing.T, h *harness) {
	h.start()
	s := h.c.Samples[0]
	ev := h.event(s.Event, "")
	h.route(ev)
	h.waitReplies(s, ev)
	h.waitRouteEmpty("first delivery acked")
	first := h.replies(ev.ID)
	// The same event again under another route id: what a redelivery after a
	// lost ack, or a DLQ replay, looks like to the connector.
	data, _ := json.Marshal(ev)
	hd := nats.Header{}
	hd.Set(bus.HeaderSchema, schemas.SchemaEvent)
	if _, err := h.hub.Publish(h.ctx(), bus.RouteSubject(h.c.Name, bus.Partition(ev.Data.User, h.c.Partitions)), "redelivery-"+ev.ID, hd, data); err != nil {
		t.Fatal(err)
	}
	h.waitRouteEmpty("redelivery acked")
	if again := h.replies(ev.ID); len(again) != len(first) {
		t.Errorf("%d replies after the redelivery, %d before: the connector replied twice (reply ids must be derived from the event id)", len(again), len(first))
	}
	h.wantDLQ(0)
}

func shutdownLosesNothing(t *testing.T, h *harness) {
	stop := h.start()
	calls := h.c.Legacy.Calls()
	h.c.Legacy.Fail(ModeHold, 0)
	defer h.c.Legacy.Recover()
	const users = 3
	var first, second []schemas.Event
	for i := range users {
		user := h.userInPartition(i % h.c.Partitions)
		a, b := h.event(h.c.LegacySample.Event, user), h.event(h.c.LegacySample.Event, user)
		h.route(a)
		h.route(b) // queued behind a: same user, same lane
		first, second = append(first, a), append(second, b)
	}
	h.eventually("first events in flight", func() error {
		if n := h.c.Legacy.Calls() - calls; n < users {
			return fmt.Errorf("%d of %d in flight", n, users)
		}
		return nil
	})
	stopped := make(chan struct{})
	go func() { defer close(stopped); stop() }()
	// Not a synchronization: the assertions hold in either order, but giving
	// the connector a moment to see the signal exercises the shutdown path.
	time.AfterFunc(100*time.Millisecond, h.c.Legacy.Recover)
	select {
	case <-stopped:
	case <-time.After(h.c.Timeout * 2):
		t.Fatal("connector did not stop")
	}
	for _, ev := range first {
		if err := h.want(h.c.LegacySample, ev); err != nil {
			t.Errorf("in-flight event %s not finished before exit: %v", ev.ID, err)
		}
	}
	h.wantDLQ(0)
	// What was not handled is still in WXHUB_ROUTE: a new start handles it.
	h.start()
	for _, ev := range append(first, second...) {
		h.waitReplies(h.c.LegacySample, ev)
	}
	h.waitRouteEmpty("everything handled after restart")
	h.wantDLQ(0)
}

func cannotReadOthers(t *testing.T, h *harness) {
	other := h.c.Name + "-other"
	if _, err := h.hub.JS().CreateOrUpdateConsumer(h.ctx(), bus.StreamRoute, connectors.ConsumerConfig(other, 0, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 16)
	nc, err := nats.Connect(h.env.URL, nats.UserInfo(h.env.User, h.env.Password), nats.CustomInboxPrefix(h.env.InboxPrefix),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, try := range []struct {
		what string
		do   func() error
	}{
		{"subscribe to " + bus.RouteFilter(other), func() error { _, err := nc.SubscribeSync(bus.RouteFilter(other)); return err }},
		{"pull from " + connectors.ConsumerName(other, 0), func() error {
			_, err := nc.Request("$JS.API.CONSUMER.MSG.NEXT."+bus.StreamRoute+"."+connectors.ConsumerName(other, 0), []byte(`{"batch":1}`), 200*time.Millisecond)
			return err
		}},
	} {
		_ = try.do()
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				t.Errorf("%s: got %v, want a permissions violation", try.what, err)
			}
		case <-time.After(h.c.Timeout):
			t.Errorf("%s: allowed; the connector's user must not reach another connector's events", try.what)
		}
	}
}

// --- harness helpers

// ctx bounds every bus call of a case; each wait has its own deadline.
func (h *harness) ctx() context.Context { return h.caseCtx }

func (h *harness) start() (stop func()) {
	h.t.Helper()
	return h.c.Start(h.t, h.env)
}

// event fills in a sample's envelope with a fresh id and a user of its own.
func (h *harness) event(base schemas.Event, user string) schemas.Event {
	h.seq++
	ev := base
	ev.Data.Extra = nil
	if user == "" {
		user = fmt.Sprintf("conformance-user-%d", h.seq)
	}
	ev.Data.User = user
	if ev.Data.Channel == "" {
		ev.Data.Channel = schemas.ChannelWeCom
	}
	if ev.Data.App == "" {
		ev.Data.App = "helpdesk"
	}
	if ev.Data.MsgType == "" {
		ev.Data.MsgType = "text"
	}
	if ev.Data.CreateTime == 0 {
		ev.Data.CreateTime = time.Now().Unix()
	}
	ev.SpecVersion, ev.DataContentType = schemas.SpecVersion, "application/json"
	ev.ID = fmt.Sprintf("conformance/%s/%d-%s", h.c.Name, h.seq, randHex(4))
	ev.Source = ev.Data.Channel + "/" + ev.Data.App
	if ev.Type == "" {
		ev.Type = "wxhub.in." + ev.Data.MsgType
		if ev.Data.MsgType == "event" {
			ev.Type += "." + strings.ToLower(ev.Data.Event)
		}
	}
	ev.Time = time.Now().UTC().Truncate(time.Millisecond)
	return ev
}

func (h *harness) userInPartition(p int) string {
	h.seq++
	for i := 0; ; i++ {
		u := fmt.Sprintf("conformance-%d-%d", h.seq, i)
		if bus.Partition(u, h.c.Partitions) == p {
			return u
		}
	}
}

func (h *harness) route(ev schemas.Event) {
	h.t.Helper()
	if _, err := h.hub.PublishRoute(h.ctx(), h.c.Name, h.c.Partitions, &ev); err != nil {
		h.t.Fatalf("route %s: %v", ev.ID, err)
	}
}

func (h *harness) eventually(what string, cond func() error) {
	h.t.Helper()
	deadline := time.Now().Add(h.c.Timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if dead := h.dead.Load(); dead != nil {
			h.t.Fatalf("the connector exited (%v) while waiting for %s: %v", *dead, what, err)
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s: %v", h.c.Timeout, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// replies are the outbound messages answering eventID, each checked against
// wxhub.outbound/v1 and its Nats-Msg-Id.
func (h *harness) replies(eventID string) []schemas.Outbound {
	h.t.Helper()
	var out []schemas.Outbound
	for raw, err := range h.hub.ReadStream(h.ctx(), bus.StreamOut, bus.SubjectOutAll, 0) {
		if err != nil {
			h.t.Fatal(err)
		}
		var o schemas.Outbound
		if err := json.Unmarshal(raw.Data, &o); err != nil {
			h.t.Errorf("WXHUB_OUT %d is not JSON: %v", raw.Sequence, err)
			continue
		}
		if o.Data.InReplyTo != eventID {
			continue
		}
		if err := schemas.Validate("outbound.v1", raw.Data); err != nil {
			h.t.Errorf("reply %s breaks wxhub.outbound/v1: %v", o.ID, err)
		}
		if id := raw.Header.Get(bus.HeaderMsgID); id != o.ID {
			h.t.Errorf("reply %s published with Nats-Msg-Id %q, want its id (de-duplication)", o.ID, id)
		}
		if raw.Subject != bus.OutSubject(o.Data.App) {
			h.t.Errorf("reply %s on %s, want %s", o.ID, raw.Subject, bus.OutSubject(o.Data.App))
		}
		out = append(out, o)
	}
	return out
}

func (h *harness) want(s Sample, ev schemas.Event) error {
	out := h.replies(ev.ID)
	if s.Want == nil {
		if len(out) == 0 {
			return errors.New("no reply")
		}
		return nil
	}
	return s.Want(out)
}

func (h *harness) waitReplies(s Sample, ev schemas.Event) []schemas.Outbound {
	h.t.Helper()
	h.eventually(fmt.Sprintf("replies to %s (%s)", ev.ID, s.Name), func() error { return h.want(s, ev) })
	return h.replies(ev.ID)
}

func (h *harness) waitRouteEmpty(what string) {
	h.t.Helper()
	h.eventually(what, func() error {
		n, err := h.hub.RouteBacklog(h.ctx())
		if err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("%d events not acked in WXHUB_ROUTE", n)
		}
		return nil
	})
}

func (h *harness) dlq() []bus.DLQEntry {
	h.t.Helper()
	l, err := h.hub.ListDLQ(h.ctx(), bus.DLQFilter{})
	if err != nil {
		h.t.Fatal(err)
	}
	for _, e := range l {
		raw, _ := json.Marshal(e.Letter)
		if err := schemas.Validate("deadletter.v1", raw); err != nil {
			h.t.Errorf("dead letter %d breaks wxhub.deadletter/v1: %v", e.Seq, err)
		}
	}
	return l
}

func (h *harness) wantDLQ(n int) {
	h.t.Helper()
	if l := h.dlq(); len(l) != n {
		reasons := make([]string, len(l))
		for i, e := range l {
			reasons[i] = e.Letter.Data.Reason
		}
		h.t.Errorf("DLQ has %d entries, want %d: %q", len(l), n, reasons)
	}
}
