// Package echo is the smallest reference connector: it answers a text message
// with "echo: <content>" and ignores everything else. Useful to check a
// deployment end to end and as a template for new connectors.
package echo

import (
	"context"

	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

// Name is the connector's name in routing rules.
const Name = "echo"

// Handler answers text messages with "echo: <content>".
func Handler() connectors.Handler {
	return connectors.HandlerFunc(func(_ context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
		if ev.Data.MsgType != "text" {
			return nil, nil
		}
		return []connectors.Reply{connectors.Text(ev.Data.User, "echo: "+ev.Data.Content)}, nil
	})
}
