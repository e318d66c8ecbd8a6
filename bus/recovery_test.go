package bus_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/internal/natstest"
)

func TestMain(m *testing.M) {
	natstest.Main()
	os.Exit(m.Run())
}

// A publish answered "no responders" (the stream is being declared, a leader
// is moving) is retried until its own timeout, not given up after 500 ms.
func TestPublishWithinRetriesUntilDeadline(t *testing.T) {
	b := openBus(t, t.TempDir())
	defer b.Close()
	ctx := testCtx(t)
	var cfg jetstream.StreamConfig
	for _, sc := range b.StreamConfigs() {
		if sc.Name == bus.StreamIn {
			cfg = sc
		}
	}
	if err := b.JS().DeleteStream(ctx, bus.StreamIn); err != nil {
		t.Fatal(err)
	}
	back := make(chan error, 1)
	go func() {
		time.Sleep(1500 * time.Millisecond) // longer than the old 2 × 250 ms of retries
		_, err := b.JS().CreateStream(ctx, cfg)
		back <- err
	}()
	start := time.Now()
	ack, err := b.PublishWithin(ctx, 3*time.Second, bus.InSubject("wecom", "helpdesk", "text"), "id-1", nil, []byte(`{}`))
	if err != nil {
		t.Fatalf("publish during the stream's absence: %v (after %s)", err, time.Since(start))
	}
	if ack.Stream != bus.StreamIn {
		t.Fatalf("stored in %q", ack.Stream)
	}
	if err := <-back; err != nil {
		t.Fatal(err)
	}
	// Without the stream for good, the publish gives up at its deadline.
	if err := b.JS().DeleteStream(ctx, bus.StreamIn); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if _, err := b.PublishWithin(ctx, 700*time.Millisecond, bus.InSubject("wecom", "helpdesk", "text"), "id-2", nil, []byte(`{}`)); err == nil {
		t.Fatal("publish without a stream succeeded")
	}
	if d := time.Since(start); d < 600*time.Millisecond || d > 2*time.Second {
		t.Fatalf("gave up after %s, want about the 700 ms timeout", d)
	}
}

// Open before NATS is up waits for it, declares, and is ready; a second
// process may Dial and wait for a bucket the first declares.
func TestOpenWaitsForNATS(t *testing.T) {
	port := natstest.FreePort(t)
	url := "nats://127.0.0.1:" + itoa(port)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type res struct {
		b   *bus.Bus
		err error
	}
	opened := make(chan res, 1)
	go func() {
		b, err := bus.Open(ctx, bus.Config{URL: url}, zaptest.NewLogger(t))
		opened <- res{b, err}
	}()
	time.Sleep(time.Second) // Open is now retrying
	srv := &natstest.Server{Name: "late", Port: port, Dir: t.TempDir()}
	srv.WriteConfig(t)
	srv.Start(t)
	t.Cleanup(srv.Kill)
	r := <-opened
	if r.err != nil {
		t.Fatalf("Open: %v", r.err)
	}
	defer r.b.Close()
	if err := r.b.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.b.WaitKV(ctx, bus.BucketDND); err != nil {
		t.Fatal(err)
	}
	// A bucket nobody declares: WaitKV gives up with ctx.
	short, scancel := context.WithTimeout(ctx, 600*time.Millisecond)
	defer scancel()
	if _, err := r.b.WaitKV(short, "wxhub_nope"); err == nil {
		t.Fatal("WaitKV of a missing bucket returned no error")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// A storage fault turns the embedded server's JetStream off (what a full disk
// does): Ready fails (so /readyz is 503 and the gateway answers 503 to
// WeChat), and the bus re-enables it on the same store by itself; what was
// stored before is still there.
func TestJetStreamReenabledAfterStorageFault(t *testing.T) {
	b := openBus(t, t.TempDir())
	defer b.Close()
	ctx := testCtx(t)
	subj := bus.InSubject("wecom", "helpdesk", "text")
	if _, err := b.PublishWithin(ctx, 2*time.Second, subj, "before", nil, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := b.DisableJetStream(); err != nil {
		t.Fatal(err)
	}
	if err := b.Ready(ctx); err == nil {
		t.Fatal("ready while JetStream is disabled")
	}
	deadline := time.Now().Add(15 * time.Second)
	for b.Ready(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("JetStream not back 15 s after the fault: %v", b.Ready(ctx))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := b.PublishWithin(ctx, 2*time.Second, subj, "after", nil, []byte(`{}`)); err != nil {
		t.Fatalf("publish after recovery: %v", err)
	}
	s, err := b.JS().Stream(ctx, bus.StreamIn)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 2 {
		t.Fatalf("WXHUB_IN holds %d messages after the fault, want 2 (before and after)", n)
	}
}

// A wrong login is not a server that is down: Open stops with the
// authorization error instead of waiting for NATS until its context ends.
func TestOpenWithWrongPasswordFails(t *testing.T) {
	srv := openBus(t, t.TempDir())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := bus.Open(ctx, bus.Config{URL: srv.ClientURL(), User: bus.LoginHub, Password: "not-the-password"}, zaptest.NewLogger(t))
	if err == nil {
		b.Close()
		t.Fatal("Open with a wrong password succeeded")
	}
	if !errors.Is(err, nats.ErrAuthorization) || ctx.Err() != nil {
		t.Fatalf("Open: %v (context: %v), want the authorization error before the context ends", err, ctx.Err())
	}
}
