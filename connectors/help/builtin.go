package help

import (
	"context"

	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/connectors"
)

// Config is the connectors.help section: only the runner's keys.
type Config struct {
	connectors.RunnerConfig `yaml:",inline"`
}

// Builtin registers help with the hub: always on, the router's default target.
var Builtin = connectors.Builtin{
	Type:    Name,
	Summary: "answers what no rule matched with the help text (the rules' descriptions)",
	Default: true,
	Configure: func(_ string, node *yaml.Node) (connectors.Instance, error) {
		c, err := connectors.ConfigureSection[Config](node)
		if err != nil {
			return connectors.Instance{}, err
		}
		return connectors.Instance{
			Options: c.Options(),
			New: func(_ context.Context, d connectors.Deps) (connectors.Handler, error) {
				return Handler(d.Hub.HelpText), nil
			},
		}, nil
	},
}
