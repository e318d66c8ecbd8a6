package sender_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/sender"
	"github.com/wxhub/wxhub/wecom/sim"
)

// publishReply publishes a connector's reply to event eventID.
func (h *harness) publishMPReply(id, eventID string, body any) {
	h.t.Helper()
	raw, _ := json.Marshal(body)
	out := schemas.Outbound{SpecVersion: schemas.SpecVersion, ID: id, Source: "connector/test", Type: "wxhub.out.message",
		Time: time.Now(), DataContentType: "application/json",
		Data: schemas.OutboundData{App: mpAccount, Kind: schemas.KindMessage, InReplyTo: eventID, Body: raw}}
	if _, err := h.bus.PublishJSON(context.Background(), bus.OutSubject(mpAccount), id, schemas.SchemaOutbound, out); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) passiveRecord(eventID string) (bus.PassiveRecord, uint64) {
	h.t.Helper()
	kv, err := h.bus.MPPassiveKV(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), bus.PassiveKey(eventID))
	if err != nil {
		return bus.PassiveRecord{}, 0
	}
	var rec bus.PassiveRecord
	json.Unmarshal(e.Value(), &rec)
	return rec, e.Revision()
}

func (h *harness) putPassive(eventID string, rec bus.PassiveRecord) {
	h.t.Helper()
	kv, _ := h.bus.MPPassiveKV(context.Background())
	v, _ := json.Marshal(rec)
	if _, err := kv.Put(context.Background(), bus.PassiveKey(eventID), v); err != nil {
		h.t.Fatal(err)
	}
}

// waitDone waits until the sender has acked everything published.
func (h *harness) waitOutAcked() {
	h.t.Helper()
	waitFor(h.t, 20*time.Second, "WXHUB_OUT acked", func() bool {
		c, err := h.bus.JS().Consumer(context.Background(), bus.StreamOut, sender.DefaultConsumer)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Stream > 0
	})
}

func TestPassiveReplies(t *testing.T) {
	h := newMPHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const waiter = "oWaiter01" // a user of its own: a held reply holds its user's later messages too
	for _, u := range []string{openID, waiter} {
		if _, err := h.sim.Say(ctx, mpAccount, u, "你好"); err != nil {
			t.Fatal(err)
		}
	}

	// The gateway answered the reply in the callback: the sender acks it without a call.
	h.putPassive("ev-passive", bus.PassiveRecord{State: bus.PassivePassive, OutboundID: "ev-passive/0"})
	h.publishMPReply("ev-passive/0", "ev-passive", mpText(openID, "已在回调中回复"))
	// While the gateway waits, a reply is held; past the deadline the sender takes it.
	until := h.clock.Now().Add(3 * time.Second)
	h.putPassive("ev-wait", bus.PassiveRecord{State: bus.PassiveWaiting, Until: until})
	h.publishMPReply("ev-wait/0", "ev-wait", mpText(waiter, "等回调之后"))
	// Released by the gateway, or no record at all: sent at once.
	h.putPassive("ev-released", bus.PassiveRecord{State: bus.PassiveReleased})
	h.publishMPReply("ev-released/0", "ev-released", mpText(openID, "回调已放弃"))
	h.publishMPReply("ev-none/0", "ev-none", mpText(openID, "没有等待"))

	for _, c := range []string{"回调已放弃", "没有等待"} {
		if _, err := h.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.Content == c }); err != nil {
			t.Fatalf("%s: %v", c, err)
		}
	}
	if rec, _ := h.passiveRecord("ev-released"); rec.State != bus.PassiveSender {
		t.Errorf("released record %+v, want taken by the sender", rec)
	}
	if rec, _ := h.passiveRecord("ev-wait"); rec.State != bus.PassiveWaiting {
		t.Fatalf("waiting record %+v changed before its deadline", rec)
	}
	h.clock.(*sender.ManualClock).Set(until.Add(time.Millisecond))
	if _, err := h.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.Content == "等回调之后" }); err != nil {
		t.Fatal(err)
	}
	if rec, _ := h.passiveRecord("ev-wait"); rec.State != bus.PassiveSender {
		t.Errorf("record past its deadline %+v, want taken by the sender", rec)
	}
	h.waitOutAcked()
	for _, m := range h.sim.SentTo(openID) {
		if m.Content == "已在回调中回复" {
			t.Errorf("a reply the gateway delivered was sent again: %+v", m)
		}
	}
}
