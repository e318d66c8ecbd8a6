package quiethours_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/connectors/quiethours"
	"github.com/wxhub/wxhub/dnd"
	"github.com/wxhub/wxhub/schemas"
)

func TestCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, bus.Config{DataDir: t.TempDir(), Port: -1}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	kv, err := b.KV(ctx, bus.BucketDND)
	if err != nil {
		t.Fatal(err)
	}
	store := dnd.NewStore(kv)
	def, _ := dnd.ParseWindow("23:00-07:00")
	h := quiethours.Handler(store, &def, func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) })

	say := func(user, text string) string {
		t.Helper()
		ev := &schemas.Event{ID: "e", Data: schemas.EventData{User: user, MsgType: "text", Content: text}}
		replies, err := h.Handle(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		if len(replies) == 0 {
			return ""
		}
		if replies[0].Priority != schemas.PriorityUrgent {
			t.Errorf("confirmation must be urgent (it must pass the window just set)")
		}
		raw, _ := json.Marshal(replies[0].Body)
		var body struct{ Text struct{ Content string } }
		json.Unmarshal(raw, &body)
		return body.Text.Content
	}
	tests := []struct {
		name, user, given, want string
	}{
		{"company default applies", "lisi", "我的免打扰", "公司默认的免打扰时段：23:00-07:00"},
		{"set", "lisi", "免打扰 22:00-08:00", "已设置免打扰 22:00-08:00"},
		{"show own", "lisi", "我的免打扰", "您设置的免打扰时段：22:00-08:00"},
		{"clear", "lisi", "取消免打扰", "已取消免打扰"},
		{"cleared overrides the default", "lisi", "我的免打扰", "您没有设置免打扰"},
		{"bad window gets the format", "wangwu", "免打扰 晚上", "格式：免打扰 22:00-08:00"},
		{"ordinary text is ignored", "wangwu", "免费打印", ""},
	}
	for _, tt := range tests {
		if got := say(tt.user, tt.given); !strings.Contains(got, tt.want) || (tt.want == "" && got != "") {
			t.Errorf("%s: %q -> %q, want %q", tt.name, tt.given, got, tt.want)
		}
	}
	if s, found, _ := store.Get(ctx, "lisi"); !found || !s.Off {
		t.Errorf("stored setting %+v found=%v, want off", s, found)
	}
}
