// Package help is the built-in default connector: it answers what no routing
// rule matched with a text listing what the hub can do, so a user is never
// left without an answer.
package help

import (
	"context"
	"strings"

	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

// Name is the connector's name; router.DefaultConnector routes here.
const Name = "help"

// Handler answers text, voice and the "open the app" events with text(). Other
// events (location reports, menu views, contact changes) get no answer: help
// pushed for a background event would be noise.
func Handler(text func() string) connectors.Handler {
	return connectors.HandlerFunc(func(_ context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
		d := ev.Data
		switch {
		case d.MsgType == "text", d.MsgType == "voice", d.MsgType == "image", d.MsgType == "location", d.MsgType == "link":
		case d.MsgType == "event" && (strings.EqualFold(d.Event, "enter_agent") || strings.EqualFold(d.Event, "subscribe") || strings.EqualFold(d.Event, "click")):
		default:
			return nil, nil
		}
		return []connectors.Reply{connectors.Text(d.User, text())}, nil
	})
}
