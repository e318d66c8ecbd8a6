package quiethours

import (
	"context"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/dnd"
	"github.com/wxhub/wxhub/schemas"
)

// Config is the connectors.dnd section: only the runner's keys.
type Config struct {
	connectors.RunnerConfig `yaml:",inline"`
}

// Builtin registers the quiet-hours commands with the hub. Their rule comes
// before the configured rules: a hub feature no user rule should shadow.
var Builtin = connectors.Builtin{
	Type:    Name,
	Summary: "免打扰 22:00-08:00 / 取消免打扰 / 我的免打扰: each member's quiet hours",
	Default: true,
	Configure: func(name string, node *yaml.Node) (connectors.Instance, error) {
		c, err := connectors.ConfigureSection[Config](node)
		if err != nil {
			return connectors.Instance{}, err
		}
		return connectors.Instance{
			Rules: []schemas.RouteRule{{
				Name: "builtin-" + name, Description: "免打扰 22:00-08:00 / 取消免打扰 / 我的免打扰：设置免打扰时段",
				// Employees only: an Official Account's customers have no quiet hours (docs/outbound.md).
				Match: schemas.RouteMatch{Channel: schemas.Strings{schemas.ChannelWeCom}, MsgType: schemas.Strings{"text"}, Content: Rule}, To: schemas.Strings{name},
			}},
			Options: c.Options(),
			New: func(ctx context.Context, d connectors.Deps) (connectors.Handler, error) {
				kv, err := d.Bus.WaitKV(ctx, bus.BucketDND) // declared by another process, perhaps not yet
				if err != nil {
					return nil, err
				}
				var def *dnd.Window
				if d.Hub.QuietHours != "" {
					w, err := dnd.ParseWindow(d.Hub.QuietHours)
					if err != nil {
						return nil, err
					}
					def = &w
				}
				return Handler(dnd.NewStore(kv), def, time.Now), nil
			},
		}, nil
	},
}
