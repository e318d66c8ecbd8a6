package erp

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

// Notifier sends a message to the user outside the handler's replies. The
// connector needs one because the SDK publishes replies only when an event
// succeeds, while "ERP unavailable, will retry" must reach the user when an
// event fails and is about to be retried. key names the notice; together with
// the event id it makes the notice's message id, so a repeated notice for the
// same event is de-duplicated by the bus.
type Notifier interface {
	Notify(ctx context.Context, ev *schemas.Event, key string, r connectors.Reply) error
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(ctx context.Context, ev *schemas.Event, key string, r connectors.Reply) error

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, ev *schemas.Event, key string, r connectors.Reply) error {
	return f(ctx, ev, key, r)
}

// BusNotifier publishes notices to WXHUB_OUT as the runner publishes replies
// (same envelope, source "connector/erp", in_reply_to the event), with message
// id "<event id>/<key>".
func BusNotifier(b *bus.Bus) Notifier {
	return NotifierFunc(func(ctx context.Context, ev *schemas.Event, key string, r connectors.Reply) error {
		app := r.App
		if app == "" {
			app = ev.Data.App
		}
		if app == "" {
			return fmt.Errorf("erp: notify: no app")
		}
		kind := r.Kind
		if kind == "" {
			kind = schemas.KindMessage
		}
		body, err := json.Marshal(r.Body)
		if err != nil {
			return fmt.Errorf("erp: notify: body: %w", err)
		}
		out := schemas.Outbound{
			SpecVersion:     schemas.SpecVersion,
			ID:              ev.ID + "/" + key,
			Source:          "connector/" + Name,
			Type:            "wxhub.out." + kind,
			Time:            time.Now().UTC(),
			DataContentType: "application/json",
			TraceParent:     bus.TraceParentFrom(ctx),
			Data: schemas.OutboundData{
				App: app, Kind: kind, Priority: r.Priority, DedupKey: r.DedupKey,
				InReplyTo: ev.ID, Body: body,
			},
		}
		if _, err := b.PublishJSON(ctx, bus.OutSubject(app), out.ID, schemas.SchemaOutbound, out); err != nil {
			return fmt.Errorf("erp: notify: %w", err)
		}
		return nil
	})
}
