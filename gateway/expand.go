package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// Directory expands a send's departments and tags into the members they
// reach in one corp's directory (directory.Store does): the sender then
// applies each member's limits and quiet hours, which a send to a department
// would bypass.
type Directory interface {
	Expand(ctx context.Context, corp, toparty, totag string) (users, unknown []string, err error)
}

// WithDirectory expands toparty and totag of pushed messages through d.
func WithDirectory(d Directory) Option { return func(g *Gateway) { g.dir = d } }

// expandRecipients replaces toparty and totag in fields by the members they
// reach in the directory of app's corp, merged into touser. An unknown
// department or tag is a 400 naming it: sending to it anyway would reach
// nobody the directory knows.
func (g *Gateway) expandRecipients(ctx context.Context, app string, fields map[string]json.RawMessage) error {
	if g.dir == nil {
		return nil
	}
	var touser, toparty, totag string
	json.Unmarshal(fields["touser"], &touser)
	json.Unmarshal(fields["toparty"], &toparty)
	json.Unmarshal(fields["totag"], &totag)
	if toparty == "" && totag == "" || touser == "@all" {
		return nil
	}
	users, unknown, err := g.dir.Expand(ctx, g.corpOf(app), toparty, totag)
	if err != nil {
		return fmt.Errorf("gateway: directory: %w", err)
	}
	if len(unknown) > 0 {
		field := "toparty"
		if strings.HasPrefix(unknown[0], "tag:") {
			field = "totag"
		}
		return badField(field, "not in the company directory: %s", strings.Join(unknown, ", "))
	}
	seen := map[string]bool{}
	var all []string
	for _, u := range append(strings.Split(touser, "|"), users...) {
		if u != "" && !seen[u] {
			seen[u] = true
			all = append(all, u)
		}
	}
	if len(all) == 0 {
		return badField("toparty", "the departments and tags have no members")
	}
	if len(all) > maxToUsers {
		return badField("toparty", "reaches %d members, more than the %d of one message", len(all), maxToUsers)
	}
	fields["touser"], _ = json.Marshal(strings.Join(all, "|"))
	delete(fields, "toparty")
	delete(fields, "totag")
	return nil
}
