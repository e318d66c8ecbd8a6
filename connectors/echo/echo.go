// Package echo is the smallest reference connector: it answers a text message
// with "echo: <content>" and ignores everything else. Useful to check a
// deployment end to end and as a template for new connectors.
package echo

import (
	"context"
	"strings"

	"go.yaml.in/yaml/v3"

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

// Config is the connectors.echo section: only the runner's keys.
type Config struct {
	connectors.RunnerConfig `yaml:",inline"`
}

// Builtin registers echo with the hub: on by default, routed by "echo <text>"
// after the configured rules.
var Builtin = connectors.Builtin{
	Type:    Name,
	Summary: "answers \"echo <text>\" with the text: checks the path end to end",
	Default: true,
	Configure: func(name string, node *yaml.Node) (connectors.Instance, error) {
		c, err := connectors.ConfigureSection[Config](node)
		if err != nil {
			return connectors.Instance{}, err
		}
		return connectors.Instance{
			Fallback: []schemas.RouteRule{{
				Name: "builtin-" + name, Description: "echo <文字>：原样回复，检查链路",
				Match: schemas.RouteMatch{MsgType: schemas.Strings{"text"}, Content: `^(?i:echo)\s`}, To: schemas.Strings{name},
			}},
			Options: c.Options(),
			New:     func(context.Context, connectors.Deps) (connectors.Handler, error) { return Handler(), nil },
		}, nil
	},
}
