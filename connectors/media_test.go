package connectors_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

// OpenMedia asks the sender once for an inbound medium; the second open reads
// the hub's store.
func TestOpenMediaFetchesOnceThenFromTheStore(t *testing.T) {
	b := newBus(t)
	ctx := testCtx(t)
	photo := "\xFF\xD8\xFF\xE0 the broken printer"
	var asked atomic.Int32
	// Plays the sender's media service (bus.SubjectMediaFetch).
	sub, err := b.Conn().Subscribe(bus.SubjectMediaFetch, func(m *nats.Msg) {
		asked.Add(1)
		var req bus.MediaFetchRequest
		_ = json.Unmarshal(m.Data, &req)
		rep := bus.MediaFetchReply{Error: "40007 invalid media_id"}
		if req.App == "helpdesk" && req.MediaID == "3photo" {
			obj, err := b.PutMedia(context.Background(), "printer.jpg", strings.NewReader(photo))
			rep = bus.MediaFetchReply{Object: obj.SHA256, Filename: obj.Filename, Size: obj.Size}
			if err != nil {
				rep = bus.MediaFetchReply{Error: err.Error()}
			}
		}
		raw, _ := json.Marshal(rep)
		_ = m.Respond(raw)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	ev := &schemas.Event{Data: schemas.EventData{Channel: schemas.ChannelWeCom, App: "helpdesk", MsgType: "image", MediaID: "3photo"}}
	for i := range 2 {
		rc, ref, err := connectors.OpenMedia(ctx, b, ev)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if string(got) != photo || ref.Filename != "printer.jpg" || ref.Size != int64(len(photo)) {
			t.Fatalf("open %d: %q %+v", i, got, ref)
		}
		if n := asked.Load(); n != 1 {
			t.Fatalf("after open %d the sender was asked %d times, want 1", i, n)
		}
	}
	if _, _, err := connectors.OpenMedia(ctx, b, &schemas.Event{Data: schemas.EventData{Channel: schemas.ChannelWeCom, MsgType: "text"}}); !errors.Is(err, connectors.ErrNoMedia) {
		t.Fatalf("a text event: %v", err)
	}
	ev.Data.MediaID = "3gone"
	if _, _, err := connectors.OpenMedia(ctx, b, ev); err == nil || !strings.Contains(err.Error(), "40007") {
		t.Fatalf("an unknown media id: %v", err)
	}
}

func TestMediaObjectReplies(t *testing.T) {
	ref := connectors.MediaRef{SHA256: strings.Repeat("a", 64)}
	for msgtype, r := range map[string]connectors.Reply{
		"image": connectors.ImageObject("lisi", ref),
		"voice": connectors.VoiceObject("lisi", ref),
		"video": connectors.VideoObject("lisi", ref, "演示", ""),
		"file":  connectors.FileObject("lisi", ref),
	} {
		body := string(mustJSON(r.Body))
		if !strings.Contains(body, `"msgtype":"`+msgtype+`"`) || !strings.Contains(body, `"`+msgtype+`":{`) || !strings.Contains(body, `"wxhub_object":"`+ref.SHA256+`"`) {
			t.Errorf("%s: %s", msgtype, body)
		}
	}
}
