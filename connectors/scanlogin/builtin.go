package scanlogin

import (
	"context"

	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

// Config is the connectors.scanlogin section.
type Config struct {
	connectors.RunnerConfig `yaml:",inline"`
	// Confirm: after a scan the member gets a card with 确认登录 / 取消, and the
	// challenge is confirmed only by that click. Default true; false confirms on
	// the scan itself (weaker: a QR code photographed by someone else logs them in).
	Confirm *bool `yaml:"confirm"`
}

// Builtin registers scan-to-login with the hub: every scancode_waitmsg goes
// to it (continue: configured rules see the scan too) and so do the clicks on
// its confirm cards.
var Builtin = connectors.Builtin{
	Type:    Name,
	Summary: "scan-to-login: binds the member who scans a login QR code to the challenge",
	Default: true,
	Configure: func(name string, node *yaml.Node) (connectors.Instance, error) {
		c, err := connectors.ConfigureSection[Config](node)
		if err != nil {
			return connectors.Instance{}, err
		}
		confirm := c.Confirm == nil || *c.Confirm
		return connectors.Instance{
			Rules: []schemas.RouteRule{{
				Name: "builtin-" + name, Match: schemas.RouteMatch{Event: schemas.Strings{"scancode_waitmsg"}},
				To: schemas.Strings{name}, Continue: true,
			}, {
				Name:  "builtin-" + name + "-confirm",
				Match: schemas.RouteMatch{Event: schemas.Strings{"template_card_event"}, TaskID: schemas.Strings{schemas.AuthTaskPrefix + "*"}},
				To:    schemas.Strings{name},
			}},
			Options: c.Options(),
			New: func(ctx context.Context, d connectors.Deps) (connectors.Handler, error) {
				kv, err := d.Bus.WaitKV(ctx, bus.BucketAuth) // declared by another process, perhaps not yet
				if err != nil {
					return nil, err
				}
				return Handler(kv, Options{Confirm: confirm, Logger: d.Logger}), nil
			},
		}, nil
	},
}
