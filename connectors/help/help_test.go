package help_test

import (
	"context"
	"testing"

	"github.com/wxhub/wxhub/connectors/help"
	"github.com/wxhub/wxhub/schemas"
)

func TestHandler(t *testing.T) {
	h := help.Handler(func() string { return "可以：订单" })
	tests := []struct {
		name  string
		given schemas.EventData
		want  int
	}{
		{"text", schemas.EventData{User: "u", MsgType: "text", Content: "?"}, 1},
		{"image", schemas.EventData{User: "u", MsgType: "image"}, 1},
		{"subscribe", schemas.EventData{User: "u", MsgType: "event", Event: "subscribe"}, 1},
		{"location report", schemas.EventData{User: "u", MsgType: "event", Event: "LOCATION"}, 0},
		{"enter agent", schemas.EventData{User: "u", MsgType: "event", Event: "enter_agent"}, 0},
		{"no user", schemas.EventData{MsgType: "text"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := h.Handle(context.Background(), &schemas.Event{ID: "e", Data: tt.given})
			if err != nil || len(got) != tt.want {
				t.Fatalf("got %d replies, %v; want %d", len(got), err, tt.want)
			}
		})
	}
}
