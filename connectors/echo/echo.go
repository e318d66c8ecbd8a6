// Package echo is the smallest reference connector: it answers a text message
// with "echo: <content>" and ignores everything else. Useful to check a
// deployment end to end and as a template for new connectors.
package echo

import (
	"context"
	"strings"

	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

// Name is the connector's name in routing rules.
const Name = "echo"

// Handler answers text messages with "echo: <content>", without the "echo "
// command word the built-in rule routes on ("echo 你好" -> "echo: 你好").
func Handler() connectors.Handler {
	return connectors.HandlerFunc(func(_ context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
		if ev.Data.MsgType != "text" {
			return nil, nil
		}
		return []connectors.Reply{connectors.Text(ev.Data.User, "echo: "+stripCommand(ev.Data.Content))}, nil
	})
}

func stripCommand(s string) string {
	t := strings.TrimLeft(s, " \t\u3000")
	if len(t) > 5 && strings.EqualFold(t[:4], "echo") && (t[4] == ' ' || t[4] == '\t') {
		return strings.TrimLeft(t[5:], " \t")
	}
	return s
}
