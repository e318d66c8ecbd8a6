package connectors_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

func TestRequirePIN(t *testing.T) {
	b := bustest.Open(t, bus.Config{})
	ctx := context.Background()
	kv, _ := b.KV(ctx, bus.BucketPIN)
	put := func(user string, verified time.Time) {
		st, _ := json.Marshal(schemas.PINStatus{User: user, Set: true, VerifiedAt: verified})
		if _, err := kv.Put(ctx, bus.PINStatusKey(user), st); err != nil {
			t.Fatal(err)
		}
	}
	put("zhangsan", time.Now().Add(-time.Minute))
	put("lisi", time.Now().Add(-10*time.Minute))
	h := connectors.Chain(connectors.HandlerFunc(func(_ context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
		return []connectors.Reply{connectors.Text(ev.Data.User, "工资条")}, nil
	}), connectors.RequirePIN(b, 5*time.Minute, "https://hub.example.com/pin/verify"))
	for _, tc := range []struct {
		user, want string
	}{
		{"zhangsan", "text"},   // verified a minute ago
		{"lisi", "textcard"},   // ten minutes ago: too old
		{"wangwu", "textcard"}, // never
	} {
		replies, err := h.Handle(ctx, &schemas.Event{Data: schemas.EventData{User: tc.user, MsgType: "text", Content: "工资"}})
		if err != nil || len(replies) != 1 {
			t.Fatalf("%s: %v, %d replies", tc.user, err, len(replies))
		}
		body := replies[0].Body.(map[string]any)
		if body["msgtype"] != tc.want {
			t.Fatalf("%s: got %v, want %s", tc.user, body["msgtype"], tc.want)
		}
		if tc.want == "textcard" && body["textcard"].(map[string]string)["url"] != "https://hub.example.com/pin/verify" {
			t.Fatalf("%s: card %v", tc.user, body)
		}
	}
}
