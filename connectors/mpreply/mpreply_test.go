package mpreply_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/wxhub/wxhub/connectors/mpreply"
	"github.com/wxhub/wxhub/schemas"
)

func TestHandler(t *testing.T) {
	h := mpreply.Handler(mpreply.Config{Accounts: map[string]mpreply.Account{
		"shop":  {Welcome: "欢迎光临小店", Reply: "客服稍后回复", Menu: map[string]string{"HOURS": "营业时间 9:00-18:00"}},
		"quiet": {Welcome: "-", Reply: "-"},
	}})
	mp := func(app, msgType, event, key string) schemas.EventData {
		return schemas.EventData{Channel: schemas.ChannelMP, App: app, User: "oX", MsgType: msgType, Event: event, EventKey: key}
	}
	tests := []struct {
		name  string
		given schemas.EventData
		want  string
	}{
		{"subscribe gets the account's welcome", mp("shop", "event", "subscribe", ""), "欢迎光临小店"},
		{"unmatched text gets the account's reply", mp("shop", "text", "", ""), "客服稍后回复"},
		{"menu click by key", mp("shop", "event", "CLICK", "HOURS"), "营业时间 9:00-18:00"},
		{"unknown menu key: nothing", mp("shop", "event", "CLICK", "NOPE"), ""},
		{"unsubscribe: nothing", mp("shop", "event", "unsubscribe", ""), ""},
		{"account without section: defaults", mp("other", "event", "subscribe", ""), mpreply.DefaultWelcome},
		{"account without section: default reply", mp("other", "voice", "", ""), mpreply.DefaultReply},
		{"switched off", mp("quiet", "text", "", ""), ""},
		{"wecom events are not ours", schemas.EventData{Channel: schemas.ChannelWeCom, App: "helpdesk", User: "u", MsgType: "text"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := h.Handle(context.Background(), &schemas.Event{ID: "e", Data: tt.given})
			if err != nil {
				t.Fatal(err)
			}
			var text string
			if len(got) == 1 {
				b, _ := json.Marshal(got[0].Body)
				var m struct{ Text struct{ Content string } }
				json.Unmarshal(b, &m)
				text = m.Text.Content
			}
			if len(got) > 1 || text != tt.want {
				t.Fatalf("replies %v, want %q", got, tt.want)
			}
		})
	}
}
