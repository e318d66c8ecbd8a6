// Package directorysync is the built-in connector that keeps the hub's
// directory current between full syncs: WeCom reports each address book
// change as a change_contact event; this connector turns it into a refresh
// request in the wxhub_directory bucket (schemas.DirRefresh under
// bus.DirRefreshKey, keyed by the event's data.corp), which the directory
// syncer of that corp the hub runs (package directory) serves with the
// WeCom token of that corp. The connector itself holds no token
// and calls no WeCom API, so it runs anywhere a connector runs; requests
// survive restarts (they sit in the bucket until served).
package directorysync

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

// Name is the connector's type and default instance name.
const Name = "directory"

// Handler writes a refresh request for every change_contact event; other
// events are ignored. Safe for concurrent use. A failed write is retried by
// the runner (a plain error).
func Handler(kv jetstream.KeyValue, now func() time.Time) connectors.Handler {
	if now == nil {
		now = time.Now
	}
	return connectors.HandlerFunc(func(ctx context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
		if !strings.EqualFold(ev.Data.Event, "change_contact") {
			return nil, nil
		}
		for _, req := range RefreshFor(ev, now()) {
			data, _ := json.Marshal(req)
			if _, err := kv.Put(ctx, bus.DirRefreshKey(req.Corp, req.Kind, req.ID), data); err != nil {
				return nil, fmt.Errorf("directorysync: write refresh request: %w", err)
			}
		}
		return nil, nil
	})
}

// Config is the connectors.directory section: only the runner's keys.
type Config struct {
	connectors.RunnerConfig `yaml:",inline"`
}

// Builtin registers the connector: off by default (`directory: {}` under
// connectors turns it on, beside the top-level directory: section that runs
// the syncer), routed every change_contact event before the configured rules.
var Builtin = connectors.Builtin{
	Type:    Name,
	Summary: "refreshes the cached WeCom directory on change_contact events",
	Default: false,
	Configure: func(name string, node *yaml.Node) (connectors.Instance, error) {
		var c Config
		if err := connectors.DecodeSection(node, &c); err != nil {
			return connectors.Instance{}, err
		}
		if err := c.Validate(); err != nil {
			return connectors.Instance{}, err
		}
		return connectors.Instance{
			Rules: []schemas.RouteRule{{
				Name: "builtin-" + name, Match: schemas.RouteMatch{MsgType: schemas.Strings{"event"}, Event: schemas.Strings{"change_contact"}},
				To: schemas.Strings{name},
			}},
			Options: c.Options(),
			New: func(ctx context.Context, d connectors.Deps) (connectors.Handler, error) {
				kv, err := d.Bus.KV(ctx, bus.BucketDirectory)
				if err != nil {
					return nil, err
				}
				return Handler(kv, nil), nil
			},
		}, nil
	},
}

// RefreshFor maps a change_contact event to the refresh requests it needs
// (a renamed member: the old id and the new one), each for the event's corp.
func RefreshFor(ev *schemas.Event, now time.Time) []schemas.DirRefresh {
	d := ev.Data
	x := func(k string) string { return strings.TrimSpace(d.Extra[k]) }
	r := func(kind, id string) schemas.DirRefresh {
		return schemas.DirRefresh{Corp: d.Corp, Kind: kind, ID: id, ChangeType: d.ChangeType, EventID: ev.ID, At: now.UTC()}
	}
	switch d.ChangeType {
	case "create_user", "update_user", "delete_user":
		out := []schemas.DirRefresh{}
		if x("UserID") != "" {
			out = append(out, r("user", x("UserID")))
		}
		if x("NewUserID") != "" && x("NewUserID") != x("UserID") {
			out = append(out, r("user", x("NewUserID")))
		}
		return out
	case "create_party", "update_party", "delete_party":
		if x("Id") != "" {
			return []schemas.DirRefresh{r("dept", x("Id"))}
		}
	case "update_tag":
		return []schemas.DirRefresh{r("tag", x("TagId"))}
	}
	return []schemas.DirRefresh{r("all", "all")}
}
