package erp

import (
	"context"
	"errors"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

// Builtin registers the ERP connector with the hub; it runs when a
// connectors.erp section gives the ERP's base_url.
var Builtin = connectors.Builtin{
	Type:    Name,
	Summary: "订单 1001 / 库存 A-100 and approval cards, from the ERP's HTTP API",
	Configure: func(name string, node *yaml.Node) (connectors.Instance, error) {
		var c Config
		if err := connectors.DecodeSection(node, &c); err != nil {
			return connectors.Instance{}, err
		}
		c = c.WithDefaults()
		if err := c.Validate(); err != nil {
			return connectors.Instance{}, errors.New(strings.TrimPrefix(err.Error(), ErrConfig.Error()+": "))
		}
		opts := c.RunnerOptions(nil)
		opts.Name = name
		return connectors.Instance{
			Rules: []schemas.RouteRule{{
				Name: "builtin-" + name, Description: "订单 1001 / 库存 A-100：查询 ERP",
				Match: schemas.RouteMatch{MsgType: schemas.Strings{"text", "voice"}, Content: CommandRule}, To: schemas.Strings{name},
			}, {
				Name:  "builtin-" + name + "-approvals",
				Match: schemas.RouteMatch{Event: schemas.Strings{"template_card_event"}, TaskID: schemas.Strings{TaskIDPrefix + "*"}}, To: schemas.Strings{name},
			}},
			Options: opts,
			New: func(_ context.Context, d connectors.Deps) (connectors.Handler, error) {
				return New(c, d.Logger)
			},
		}, nil
	},
}
