// Package help is the built-in default connector: the router sends it every
// event no rule matches, and it answers with a help text listing what the hub
// can do (cmd/wxhub passes the router's Config.Help, re-read on each event so a
// rules reload updates it).
package help

import (
	"context"
	"strings"

	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

// Name is the connector's name, the router's default target.
const Name = "help"

// answered are the events that deserve an answer: a user who subscribes or
// clicks a menu item expects one; location reports, app entries and the like
// arrive unasked and would turn the help text into spam.
var answered = map[string]bool{"subscribe": true, "click": true, "scancode_waitmsg": true}

// Handler answers every user message, and subscribe/click events, with text().
func Handler(text func() string) connectors.Handler {
	return connectors.HandlerFunc(func(_ context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
		if ev.Data.User == "" {
			return nil, nil
		}
		if ev.Data.MsgType == "event" && !answered[strings.ToLower(ev.Data.Event)] {
			return nil, nil
		}
		return []connectors.Reply{connectors.Text(ev.Data.User, text())}, nil
	})
}
