package sender_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
)

// A pushed card's status keeps its task_id and response_code, and each click
// (template_card_event on WXHUB_IN) is appended once, even when delivered twice.
func TestCardStatusRecordsClicks(t *testing.T) {
	h := newHarness(t, harnessOpts{users: 1})
	card := json.RawMessage(`{"touser":"boss|u0","msgtype":"template_card","template_card":{"card_type":"button_interaction","task_id":"claim-7","main_title":{"title":"New request"},"button_list":[{"text":"Claim","key":"claim"}]}}`)
	h.publishBody("card-1", "", schemas.KindMessage, card)
	var st schemas.MessageStatus
	waitFor(t, 10*time.Second, "card sent", func() bool { st = h.status("card-1"); return st.SentAt != nil })
	if st.Status != schemas.StatusSent || st.TaskID != "claim-7" || st.ResponseCode == "" || st.ToUser != "boss|u0" || st.MsgType != "template_card" {
		t.Fatalf("status = %+v", st)
	}
	code := h.sim.IssueClickCode(testApp, "u0", "claim-7")
	click := schemas.Event{SpecVersion: schemas.SpecVersion, ID: "ev-1", Source: "wecom/" + testApp, Type: "wxhub.in.event.template_card_event",
		Time: time.Now().UTC(), Data: schemas.EventData{Channel: "wecom", App: testApp, User: "u0", MsgType: "event",
			Event: "template_card_event", EventKey: "claim", TaskID: "claim-7", ResponseCode: code}}
	subj := bus.InSubject("wecom", testApp, "event.template_card_event")
	for _, id := range []string{"ev-1", "ev-1-again"} { // the second is a redelivery under another id
		click.ID = id
		if _, err := h.bus.PublishJSON(context.Background(), subj, id, schemas.SchemaEvent, click); err != nil {
			t.Fatal(err)
		}
	}
	// A click on a card the hub never pushed is dropped after a few tries, recording nothing.
	other := click
	other.ID, other.Data.TaskID = "ev-2", "unknown-task"
	if _, err := h.bus.PublishJSON(context.Background(), subj, other.ID, schemas.SchemaEvent, other); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "click recorded", func() bool { st = h.status("card-1"); return len(st.Clicks) > 0 })
	c := st.Clicks[0]
	if c.User != "u0" || c.Key != "claim" || c.ResponseCode != code || st.ClickCount != 1 {
		t.Fatalf("click = %+v (count %d)", c, st.ClickCount)
	}
	// The click's code updates the card for both recipients through the sender.
	got, ok := st.UnusedCode(time.Now())
	if !ok || got != code {
		t.Fatalf("UnusedCode = %q %v, want the click's", got, ok)
	}
	upd, _ := json.Marshal(map[string]any{"atall": 1, "response_code": got, "button": map[string]any{"replace_name": "Claimed"}})
	h.publishBody("upd-1", "", schemas.KindCardUpdate, upd)
	waitFor(t, 10*time.Second, "card updated for both", func() bool {
		n := 0
		for _, m := range h.sim.Sent() {
			if m.API == "message/update_template_card" && m.Content == "Claimed" {
				n++
			}
		}
		return n == 2
	})
	waitFor(t, 10*time.Second, "redelivered click acked", func() bool {
		info, err := h.bus.JS().Consumer(context.Background(), bus.StreamIn, "sender-card-clicks")
		if err != nil {
			return false
		}
		ci, err := info.Info(context.Background())
		return err == nil && ci.NumAckPending == 0 && ci.NumPending == 0
	})
	if st = h.status("card-1"); st.ClickCount != 1 || len(st.Clicks) != 1 {
		t.Fatalf("clicks after redelivery = %+v", st.Clicks)
	}
}

func TestAddClickBounded(t *testing.T) {
	var st schemas.MessageStatus
	for i := range schemas.MaxCardClicks + 5 {
		st.AddClick(schemas.CardClick{User: "u", Key: string(rune('a' + i%26))})
	}
	if len(st.Clicks) != schemas.MaxCardClicks || st.ClickCount != schemas.MaxCardClicks+5 {
		t.Fatalf("len %d count %d", len(st.Clicks), st.ClickCount)
	}
}
