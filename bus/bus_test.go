package bus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
)

func openBus(t *testing.T, dir string) *bus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, bus.Config{DataDir: dir, Port: -1}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return b
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestOpenDeclaresIdempotently(t *testing.T) {
	b := openBus(t, t.TempDir())
	defer b.Close()
	ctx := testCtx(t)
	if err := b.Declare(ctx); err != nil {
		t.Fatalf("second Declare: %v", err)
	}
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	want := map[string]jetstream.RetentionPolicy{
		bus.StreamIn: jetstream.LimitsPolicy, bus.StreamRoute: jetstream.WorkQueuePolicy,
		bus.StreamOut: jetstream.LimitsPolicy, bus.StreamDLQ: jetstream.LimitsPolicy,
	}
	for name, ret := range want {
		st, err := b.JS().Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		cfg := st.CachedInfo().Config
		if cfg.Retention != ret || cfg.Storage != jetstream.FileStorage || cfg.Duplicates < 2*time.Minute {
			t.Errorf("%s: retention %v storage %v duplicates %v", name, cfg.Retention, cfg.Storage, cfg.Duplicates)
		}
	}
	for _, name := range []string{bus.BucketTokens, bus.BucketDND, bus.BucketStatus, bus.BucketAuth, bus.BucketOIDCKeys, bus.BucketOIDC, bus.BucketPIN, bus.BucketDirectory} {
		kv, err := b.KV(ctx, name)
		if err != nil {
			t.Fatalf("KV %s: %v", name, err)
		}
		if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
			t.Fatalf("KV %s put: %v", name, err)
		}
	}
	// A second process declaring the same streams against the running server.
	b2, err := bus.Open(ctx, bus.Config{URL: b.ClientURL(), DataDir: b.Config().DataDir, Name: "second"}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("second Open via URL: %v", err)
	}
	if err := b2.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestPublishDedupByMsgID(t *testing.T) {
	b := openBus(t, t.TempDir())
	defer b.Close()
	ctx := testCtx(t)
	subj := bus.InSubject(schemas.ChannelWeCom, "helpdesk", "text")
	ev := schemas.Event{ID: "m1", Type: "wxhub.in.text"}
	a1, err := b.PublishJSON(ctx, subj, "m1", schemas.SchemaEvent, ev)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := b.PublishJSON(ctx, subj, "m1", schemas.SchemaEvent, ev)
	if err != nil {
		t.Fatal(err)
	}
	if a1.Duplicate || !a2.Duplicate || a1.Sequence != a2.Sequence {
		t.Fatalf("acks: %+v %+v, want second to be a duplicate of the first", a1, a2)
	}
	st, _ := b.JS().Stream(ctx, bus.StreamIn)
	info, _ := st.Info(ctx)
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want 1", info.State.Msgs)
	}
	if _, err := b.PublishJSON(ctx, subj, "", schemas.SchemaEvent, ev); !errors.Is(err, bus.ErrMsgID) {
		t.Fatalf("empty msg id: err %v, want ErrMsgID", err)
	}
}

func TestPublishHeaders(t *testing.T) {
	b := openBus(t, t.TempDir())
	defer b.Close()
	ctx := testCtx(t)
	tp := bus.NewTraceParent()
	ack, err := b.PublishJSON(bus.WithTraceParent(ctx, tp), bus.OutSubject("helpdesk"), "o1", schemas.SchemaOutbound, map[string]string{"a": "b"})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := b.JS().Stream(ctx, bus.StreamOut)
	raw, err := st.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{bus.HeaderMsgID: "o1", bus.HeaderSchema: schemas.SchemaOutbound, bus.HeaderTraceParent: tp} {
		if got := raw.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	// Without a trace in ctx a new valid one is started.
	ack, _ = b.PublishJSON(ctx, bus.OutSubject("helpdesk"), "o2", schemas.SchemaOutbound, 1)
	raw, _ = st.GetMsg(ctx, ack.Sequence)
	if _, err := bus.ParseTraceParent(raw.Header.Get(bus.HeaderTraceParent)); err != nil {
		t.Errorf("generated traceparent: %v", err)
	}
}

func TestRestartKeepsMessages(t *testing.T) {
	dir := t.TempDir()
	b := openBus(t, dir)
	ctx := testCtx(t)
	ack, err := b.PublishJSON(ctx, bus.RouteSubject("erp", 3), "r1", schemas.SchemaEvent, schemas.Event{ID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	kv, _ := b.KV(ctx, bus.BucketDND)
	if _, err := kv.Put(ctx, "zhangsan", []byte("22:00-08:00")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	b = openBus(t, dir)
	defer b.Close()
	st, _ := b.JS().Stream(ctx, bus.StreamRoute)
	raw, err := st.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatalf("message lost across restart: %v", err)
	}
	if raw.Subject != "wxhub.route.erp.3" {
		t.Fatalf("subject %q", raw.Subject)
	}
	kv, _ = b.KV(ctx, bus.BucketDND)
	e, err := kv.Get(ctx, "zhangsan")
	if err != nil || string(e.Value()) != "22:00-08:00" {
		t.Fatalf("kv lost across restart: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		given   bus.Config
		wantErr string
	}{
		{name: "zero value", given: bus.Config{}},
		{name: "replicas", given: bus.Config{Replicas: 7}, wantErr: "nats.replicas"},
		{name: "partitions", given: bus.Config{Partitions: -2}, wantErr: "nats.partitions"},
		{name: "port", given: bus.Config{Port: 70000}, wantErr: "nats.port"},
		{name: "unknown login", given: bus.Config{Login: "root"}, wantErr: "nats.login"},
		{name: "user takes a generated login's name", given: bus.Config{Users: []bus.UserConfig{{Name: "connector-erp", Password: "pw"}}}, wantErr: "reserved"},
		{name: "dup window past max age", given: bus.Config{DuplicateWindow: time.Hour, MaxAge: time.Minute}, wantErr: "nats.duplicate_window"},
		{name: "creds and user", given: bus.Config{CredsFile: "x.creds", User: "u"}, wantErr: "exclusive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.given.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if !errors.Is(err, bus.ErrConfig) || !contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want ErrConfig naming %q", err, tt.wantErr)
			}
		})
	}
}

func TestOpenFailsClearly(t *testing.T) {
	ctx := testCtx(t)
	_, err := bus.Open(ctx, bus.Config{URL: "nats://127.0.0.1:1", ConnectTimeout: time.Second}, zaptest.NewLogger(t))
	if err == nil || !contains(err.Error(), "connect") {
		t.Fatalf("err %v, want connect error", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestPublishErrors: the answers a publish can get besides an ack come back as
// jetstream's own errors, so callers can tell a missing stream from a refusal.
func TestPublishErrors(t *testing.T) {
	b := openBus(t, t.TempDir())
	defer b.Close()
	tests := []struct {
		name    string
		subject string
		header  nats.Header
		check   func(error) bool
	}{
		{"no stream for the subject", "wxhub.nowhere", nil, func(err error) bool { return errors.Is(err, jetstream.ErrNoStreamResponse) }},
		{"refused by the stream", bus.InSubject(schemas.ChannelWeCom, "helpdesk", "text"),
			nats.Header{"Nats-Expected-Stream": {"SOME_OTHER_STREAM"}},
			func(err error) bool {
				var ae *jetstream.APIError
				return errors.As(err, &ae) && ae.ErrorCode == 10060 // the server's JSStreamNotMatchErr
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.Publish(testCtx(t), tt.subject, "id-1", tt.header, []byte("{}"))
			if err == nil || !tt.check(err) {
				t.Fatalf("err = %v (%T)", err, errors.Unwrap(err))
			}
		})
	}
}

func TestPublishWithin(t *testing.T) {
	b := openBus(t, t.TempDir())
	defer b.Close()
	ctx := testCtx(t)
	subj := bus.InSubject(schemas.ChannelWeCom, "helpdesk", "text")
	ack, err := b.PublishWithin(ctx, 2*time.Second, subj, "w-1", nil, []byte("{}"))
	if err != nil || ack.Stream != bus.StreamIn || ack.Sequence == 0 {
		t.Fatalf("ack %+v, err %v", ack, err)
	}
	if again, err := b.PublishWithin(ctx, 2*time.Second, subj, "w-1", nil, []byte("{}")); err != nil || !again.Duplicate {
		t.Fatalf("second publish of w-1: %+v %v, want a duplicate", again, err)
	}
	if _, err := b.PublishWithin(ctx, 2*time.Second, "wxhub.nowhere", "w-2", nil, []byte("{}")); !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("no stream: err %v", err)
	}
	if _, err := b.PublishWithin(ctx, 0, subj, "w-3", nil, []byte("{}")); err == nil {
		t.Fatal("timeout 0 accepted")
	}
}

// The hub's own connection to the embedded server is in-process (no loopback
// socket); other processes still reach the server over TCP at ClientURL.
func TestEmbeddedConnectionIsInProcess(t *testing.T) {
	b := openBus(t, t.TempDir())
	defer b.Close()
	if got := b.Conn().ConnectedAddr(); got != "pipe" {
		t.Errorf("embedded bus connection: remote address %q, want the in-process pipe", got)
	}
	other, err := bus.Dial(testCtx(t), bus.Config{URL: b.ClientURL(), DataDir: b.Config().DataDir}, nil)
	if err != nil {
		t.Fatalf("Dial %s: %v", b.ClientURL(), err)
	}
	defer other.Close()
	if got := other.Conn().ConnectedAddr(); !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("dialled bus connection: remote address %q, want TCP on loopback", got)
	}
	subj := bus.InSubject(schemas.ChannelWeCom, "helpdesk", "text")
	ev := schemas.Event{ID: "over-tcp", Type: "wxhub.in.text"}
	if _, err := other.PublishJSON(testCtx(t), subj, ev.ID, schemas.SchemaEvent, ev); err != nil {
		t.Fatalf("publish over TCP: %v", err)
	}
}

// ReadStream walks a stream's messages on a subject filter in order, from a
// sequence on, and stops when the caller does.
func TestReadStream(t *testing.T) {
	b := openBus(t, t.TempDir())
	defer b.Close()
	ctx := testCtx(t)
	text := bus.InSubject(schemas.ChannelWeCom, "helpdesk", "text")
	image := bus.InSubject(schemas.ChannelWeCom, "helpdesk", "image")
	for i, subj := range []string{text, image, text, text} {
		if _, err := b.Publish(ctx, subj, fmt.Sprint("r", i), nil, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	seqs := func(subject string, from uint64, stopAfter int) []uint64 {
		var got []uint64
		for raw, err := range b.ReadStream(ctx, bus.StreamIn, subject, from) {
			if err != nil {
				t.Fatal(err)
			}
			if got = append(got, raw.Sequence); len(got) == stopAfter {
				break
			}
		}
		return got
	}
	for _, tt := range []struct {
		name      string
		subject   string
		from      uint64
		stopAfter int
		want      []uint64
	}{
		{"all", bus.SubjectInAll, 0, 0, []uint64{1, 2, 3, 4}},
		{"one subject", text, 0, 0, []uint64{1, 3, 4}},
		{"from a sequence", text, 2, 0, []uint64{3, 4}},
		{"caller stops", bus.SubjectInAll, 1, 2, []uint64{1, 2}},
		{"past the end", bus.SubjectInAll, 5, 0, nil},
	} {
		if got := seqs(tt.subject, tt.from, tt.stopAfter); !slices.Equal(got, tt.want) {
			t.Errorf("%s: sequences %v, want %v", tt.name, got, tt.want)
		}
	}
	var errs []error
	for _, err := range b.ReadStream(ctx, "NO_SUCH_STREAM", ">", 0) {
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], jetstream.ErrStreamNotFound) {
		t.Errorf("missing stream: yielded %v, want one ErrStreamNotFound", errs)
	}
}
