package bus_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
)

// Media is stored once per content, under its SHA-256, with its file name.
func TestPutMediaByContent(t *testing.T) {
	b := bustest.Open(t, bus.Config{})
	ctx := context.Background()
	a, err := b.PutMedia(ctx, "合同模板.docx", bytes.NewReader([]byte("same content")))
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.PutMedia(ctx, "copy.docx", bytes.NewReader([]byte("same content")))
	if err != nil || again.SHA256 != a.SHA256 || a.Size != 12 || len(a.SHA256) != 64 {
		t.Fatalf("PutMedia = %+v, %+v, %v", a, again, err)
	}
	r, obj, err := b.GetMedia(ctx, a.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, _ := io.ReadAll(r)
	if string(got) != "same content" || obj.Filename != "合同模板.docx" {
		t.Fatalf("GetMedia = %q, %+v (the first name stays)", got, obj)
	}
	st, _ := b.MediaStore(ctx)
	var n int
	l, _ := st.List(ctx)
	n = len(l)
	if n != 1 {
		t.Fatalf("%d objects, want 1", n)
	}
}

func TestEnsureKV(t *testing.T) {
	b := bustest.Open(t, bus.Config{})
	ctx := context.Background()
	cfg := jetstream.KeyValueConfig{Bucket: bus.BucketFileshare, TTL: bus.FileshareTTL, History: 1}
	kv, err := b.EnsureKV(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	kv2, err := b.EnsureKV(ctx, cfg) // opens, does not recreate
	if err != nil {
		t.Fatal(err)
	}
	if e, err := kv2.Get(ctx, "k"); err != nil || string(e.Value()) != "v" {
		t.Fatalf("Get = %v, %v", e, err)
	}
}

func TestMediaIDRecordValidity(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	r := bus.MediaIDRecord{MediaID: "m", CreatedAt: t0}
	for _, tc := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {65 * time.Hour, true}, {66 * time.Hour, false}, {80 * time.Hour, false}} {
		if got := r.ValidAt(t0.Add(tc.at), 6*time.Hour); got != tc.want {
			t.Errorf("ValidAt(+%s) = %v, want %v", tc.at, got, tc.want)
		}
	}
	if (bus.MediaIDRecord{CreatedAt: t0}).ValidAt(t0, 0) {
		t.Error("a record without a media id is valid")
	}
}
