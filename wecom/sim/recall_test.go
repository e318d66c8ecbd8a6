package sim_test

import (
	"testing"
	"time"

	"github.com/wxhub/wxhub/wecom/sim"
)

func TestMessageRecall(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token()
	out := e.send(tok, text("zhangsan", "recall me"))
	id, _ := out["msgid"].(string)
	old := e.send(tok, text("zhangsan", "too old"))
	oldID, _ := old["msgid"].(string)
	if id == "" || oldID == "" {
		t.Fatalf("send: %v %v", out, old)
	}
	recall := func(msgid string) int {
		return code(e.call("POST", "/cgi-bin/message/recall?access_token="+tok, map[string]any{"msgid": msgid}))
	}
	if got := recall(id); got != 0 {
		t.Fatalf("recall: errcode %d", got)
	}
	if _, ok := e.s.Recalled(id); !ok {
		t.Fatal("recalled message not visible")
	}
	if _, ok := e.s.Recalled(oldID); ok {
		t.Fatal("other message shown as recalled")
	}
	tests := []struct {
		name  string
		msgid string
		want  int
	}{
		{"second recall", id, sim.CodeInvalidParameter},
		{"unknown", "nope", sim.CodeInvalidParameter},
		{"empty", "", sim.CodeInvalidParameter},
	}
	for _, tt := range tests {
		if got := recall(tt.msgid); got != tt.want {
			t.Errorf("%s: errcode %d, want %d", tt.name, got, tt.want)
		}
	}
	e.clock.Advance(24*time.Hour + time.Minute)
	tok = e.token()
	if got := code(e.call("POST", "/cgi-bin/message/recall?access_token="+tok, map[string]any{"msgid": oldID})); got != sim.CodeInvalidParameter {
		t.Fatalf("recall past 24 h: errcode %d", got)
	}
	if _, ok := e.s.Recalled(oldID); ok {
		t.Fatal("recall past the window took effect")
	}
}
