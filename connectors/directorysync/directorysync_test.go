package directorysync_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/connectors/directorysync"
	"github.com/wxhub/wxhub/schemas"
)

func TestRefreshRequests(t *testing.T) {
	b := bustest.Open(t, bus.Config{})
	ctx := context.Background()
	kv, err := b.KV(ctx, bus.BucketDirectory)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	h := directorysync.Handler(kv, func() time.Time { return now })
	for _, tc := range []struct {
		name   string
		corp   string // the event's data.corp
		change string
		extra  map[string]string
		want   []string // kind/id
	}{
		{"update user", "", "update_user", map[string]string{"UserID": "zhangsan"}, []string{"user/zhangsan"}},
		{"renamed user", "", "update_user", map[string]string{"UserID": "zhangsan", "NewUserID": "zhangsan001"}, []string{"user/zhangsan", "user/zhangsan001"}},
		{"user with @", "", "create_user", map[string]string{"UserID": "a@b.c"}, []string{"user/a@b.c"}},
		{"delete party", "", "delete_party", map[string]string{"Id": "7"}, []string{"dept/7"}},
		{"tag", "", "update_tag", map[string]string{"TagId": "3"}, []string{"tag/3"}},
		{"unknown change", "", "batch_job_result", nil, []string{"all/all"}},
		{"another corp's user", "wwsupplier01", "update_user", map[string]string{"UserID": "zhangsan"}, []string{"user/zhangsan"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &schemas.Event{ID: "ev-" + tc.name, Data: schemas.EventData{Corp: tc.corp, MsgType: "event", Event: "change_contact", ChangeType: tc.change, Extra: tc.extra}}
			if replies, err := h.Handle(ctx, ev); err != nil || len(replies) != 0 {
				t.Fatalf("Handle: %v, %d replies", err, len(replies))
			}
			for _, w := range tc.want {
				var kind, id string
				for i := range w {
					if w[i] == '/' {
						kind, id = w[:i], w[i+1:]
						break
					}
				}
				e, err := kv.Get(ctx, bus.DirRefreshKey(tc.corp, kind, id))
				if err != nil {
					t.Fatalf("no request %s: %v", w, err)
				}
				var r schemas.DirRefresh
				_ = json.Unmarshal(e.Value(), &r)
				if r.Corp != tc.corp || r.Kind != kind || r.ID != id || r.ChangeType != tc.change || r.EventID != ev.ID || !r.At.Equal(now) {
					t.Fatalf("request %s = %+v", w, r)
				}
				_ = kv.Delete(ctx, e.Key())
			}
		})
	}
	// Other events are not the connector's business.
	if _, err := h.Handle(ctx, &schemas.Event{Data: schemas.EventData{MsgType: "text", Content: "hi"}}); err != nil {
		t.Fatal(err)
	}
	if l, err := kv.ListKeysFiltered(ctx, "refresh.>"); err == nil {
		for k := range l.Keys() {
			t.Fatalf("unexpected request %s", k)
		}
	}
}

func TestBuiltin(t *testing.T) {
	inst, err := directorysync.Builtin.Configure("directory", nil)
	if err != nil {
		t.Fatal(err)
	}
	if directorysync.Builtin.Default || len(inst.Rules) != 1 || inst.Rules[0].Match.Event[0] != "change_contact" || inst.Rules[0].To[0] != "directory" {
		t.Fatalf("Builtin: %+v", inst.Rules)
	}
}
