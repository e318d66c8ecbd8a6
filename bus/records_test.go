package bus_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/schemas"
)

// Every shared record survives a trip through its bucket under its key, and
// its keys are ones the KV accepts, whatever the id looks like.
func TestSharedRecordsRoundTrip(t *testing.T) {
	b := bustest.Open(t, bus.Config{})
	ctx := context.Background()
	tokens, err := b.KV(ctx, bus.BucketTokens)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	tok := bus.TokenRecord{Token: "t-1", ExpiresAt: now.Add(2 * time.Hour), RefreshBy: "replica-a", RefreshUntil: now.Add(30 * time.Second)}
	for _, key := range []string{bus.TokenKey("ww0123.corp/x", 1000002), bus.MPTokenKey("wx5823bf96d3bd56c7")} {
		data, _ := json.Marshal(tok)
		if _, err := tokens.Put(ctx, key, data); err != nil {
			t.Fatalf("put %q: %v", key, err)
		}
		e, err := tokens.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		var got bus.TokenRecord
		if err := json.Unmarshal(e.Value(), &got); err != nil || got != tok {
			t.Fatalf("token round trip: %+v %v, want %+v", got, err, tok)
		}
	}
	if !tok.Valid(now, 5*time.Minute) || tok.Valid(now.Add(116*time.Minute), 5*time.Minute) {
		t.Error("Valid: want valid now and not within the early-refresh margin")
	}
	if k := bus.TokenKey("ww0123456789abcdef", 1000002); k != "ww0123456789abcdef_1000002" {
		t.Errorf("TokenKey = %q: a changed encoding orphans every stored token", k)
	}

	status, err := b.KV(ctx, bus.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"m-1", "dedup:erp/订单 1001", "b64_looks-encoded", "a@b.c"} {
		st := schemas.MessageStatus{ID: id, App: "helpdesk", Status: "queued"}
		data, _ := json.Marshal(st)
		if _, err := status.Put(ctx, bus.StatusKey(id), data); err != nil {
			t.Fatalf("status put %q (key %q): %v", id, bus.StatusKey(id), err)
		}
		e, err := status.Get(ctx, bus.StatusKey(id))
		if err != nil {
			t.Fatal(err)
		}
		var got schemas.MessageStatus
		if err := json.Unmarshal(e.Value(), &got); err != nil || got.ID != id || got.Status != "queued" {
			t.Fatalf("status round trip of %q: %+v %v", id, got, err)
		}
	}
	if bus.SafeKey("b64_x") == "b64_x" {
		t.Error("a plain id that looks encoded must be encoded too, or two ids share a key")
	}
}
