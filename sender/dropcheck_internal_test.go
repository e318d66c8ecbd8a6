package sender

import (
	"encoding/json"
	"testing"
	"time"
)

func TestDupRecord(t *testing.T) {
	t0 := time.Date(2025, 3, 3, 10, 0, 0, 0, time.UTC)
	body := map[string]json.RawMessage{"touser": json.RawMessage(`"a"`), "text": json.RawMessage(`{"content":"x"}`)}
	other := map[string]json.RawMessage{"touser": json.RawMessage(`"b"`), "text": json.RawMessage(`{"content":"x"}`)}
	k, ko := dupKey("app", body), dupKey("app", other)
	d := newDupRecord(3)
	for _, step := range []struct {
		name string
		key  [32]byte
		id   string
		at   time.Duration
		want string
	}{
		{"first send", k, "m1", 0, ""},
		{"retry of the same message: WeCom's check doing its job", k, "m1", time.Minute, ""},
		{"another message, same body: dropped", k, "m2", 2 * time.Minute, "m1"},
		{"another recipient", ko, "m3", 2 * time.Minute, ""},
		{"the window runs from the first send", k, "m4", 30 * time.Minute, ""},
		{"a new window from m4", k, "m5", 31 * time.Minute, "m4"},
	} {
		if got := d.sent(step.key, step.id, t0.Add(step.at), 30*time.Minute); got != step.want {
			t.Errorf("%s: sent = %q, want %q", step.name, got, step.want)
		}
	}
	if dupKey("app", body) == dupKey("other", body) {
		t.Error("the app is part of the key")
	}
	// The bound: past max entries the oldest is forgotten.
	d = newDupRecord(2)
	for i, id := range []string{"a", "b", "c"} {
		d.sent(dupKey("app", map[string]json.RawMessage{"n": json.RawMessage{byte('0' + i)}}), id, t0, time.Hour)
	}
	d.sent(dupKey("app", map[string]json.RawMessage{"n": json.RawMessage("9")}), "z", t0, time.Hour)
	if len(d.by) > 3 {
		t.Errorf("record holds %d entries, want <= max+1", len(d.by))
	}
}
