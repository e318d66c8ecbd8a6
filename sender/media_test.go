package sender_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/sender"
)

func fileBody(user, sha string) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"touser": user, "msgtype": "file", "file": map[string]string{bus.MediaObjectField: sha}})
	return b
}

// A file message referencing a stored object is uploaded once and sent with
// the media id; a second message within the id's validity reuses it; after
// WeCom's 3 days (less the margin) the object is uploaded again.
func TestMediaObjectUploadedOnceWithinValidity(t *testing.T) {
	clock := sender.NewManualClock(time.Date(2025, 3, 3, 10, 0, 0, 0, shanghai))
	h := newHarness(t, harnessOpts{users: 1, clock: clock})
	ctx := context.Background()
	content := []byte("PK\x03\x04 销售周报 第12周")
	obj, err := h.bus.PutMedia(ctx, "销售周报-第12周.xlsx", bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	sentFiles := func() int {
		n := 0
		for _, m := range h.sim.SentTo("u0") {
			if m.MsgType == "file" {
				n++
			}
		}
		return n
	}
	h.publishBody("f1", "", schemas.KindMessage, fileBody("u0", obj.SHA256))
	waitFor(t, 20*time.Second, "first file", func() bool { return sentFiles() == 1 })
	up := h.sim.Uploads()
	if len(up) != 1 || up[0].Filename != "销售周报-第12周.xlsx" || !bytes.Equal(up[0].Data, content) || up[0].Type != "file" {
		t.Fatalf("uploads = %+v", up)
	}
	var sent struct {
		File map[string]string `json:"file"`
	}
	_ = json.Unmarshal(h.sim.SentTo("u0")[0].Body, &sent)
	if sent.File["media_id"] != up[0].ID || sent.File[bus.MediaObjectField] != "" {
		t.Fatalf("sent file object %v, want media_id %s only", sent.File, up[0].ID)
	}

	clock.Advance(48 * time.Hour)
	h.publishBody("f2", "", schemas.KindMessage, fileBody("u0", obj.SHA256))
	waitFor(t, 20*time.Second, "second file", func() bool { return sentFiles() == 2 })
	if n := len(h.sim.Uploads()); n != 1 {
		t.Fatalf("uploads after a reuse = %d, want 1", n)
	}

	clock.Advance(20 * time.Hour) // 68 h: inside WeCom's 72 h, but not its margin
	h.publishBody("f3", "", schemas.KindMessage, fileBody("u0", obj.SHA256))
	waitFor(t, 20*time.Second, "third file", func() bool { return sentFiles() == 3 })
	if n := len(h.sim.Uploads()); n != 2 {
		t.Fatalf("uploads near the id's expiry = %d, want 2", n)
	}
}

// A reference to an object that is not stored fails the message for good,
// with a reason naming the object.
func TestMediaObjectMissing(t *testing.T) {
	h := newHarness(t, harnessOpts{users: 1})
	h.publishBody("m1", "", schemas.KindMessage, fileBody("u0", strings.Repeat("ab", 32)))
	waitFor(t, 20*time.Second, "failed status", func() bool { return h.status("m1").Status == schemas.StatusFailed })
	if r := h.status("m1").Reason; !strings.Contains(r, bus.MediaObjectField) {
		t.Fatalf("reason %q does not name the object", r)
	}
	if len(h.sim.Uploads()) != 0 {
		t.Fatal("uploaded something")
	}
}

// The fetch service downloads an app's media (media/get) into the media store.
func TestMediaFetchService(t *testing.T) {
	h := newHarness(t, harnessOpts{users: 1})
	voice := []byte("#!AMR\n合同模板")
	id := h.sim.AddMedia(testApp, "voice", "voice.amr", voice)
	tests := []struct {
		name    string
		given   bus.MediaFetchRequest
		wantErr string
	}{
		{name: "voice", given: bus.MediaFetchRequest{App: testApp, MediaID: id}},
		{name: "unknown media", given: bus.MediaFetchRequest{App: testApp, MediaID: "nope"}, wantErr: "40007"},
		{name: "unknown app", given: bus.MediaFetchRequest{App: "nope", MediaID: id}, wantErr: "not a WeCom app"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := json.Marshal(tc.given)
			var msg *nats.Msg
			var err error
			waitFor(t, 20*time.Second, "the fetch service", func() bool { // Run subscribes as it starts
				msg, err = h.bus.Conn().Request(bus.SubjectMediaFetch, req, 20*time.Second)
				return !errors.Is(err, nats.ErrNoResponders)
			})
			if err != nil {
				t.Fatal(err)
			}
			var rep bus.MediaFetchReply
			if err := json.Unmarshal(msg.Data, &rep); err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" {
				if !strings.Contains(rep.Error, tc.wantErr) {
					t.Fatalf("reply %+v, want error %q", rep, tc.wantErr)
				}
				return
			}
			if rep.Error != "" || rep.Filename != "voice.amr" {
				t.Fatalf("reply %+v", rep)
			}
			r, _, err := h.bus.GetMedia(context.Background(), rep.Object)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, _ := io.ReadAll(r)
			if !bytes.Equal(got, voice) {
				t.Fatalf("stored %q, want %q", got, voice)
			}
		})
	}
}
