package e2e_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/hub/hubtest"
	"github.com/wxhub/wxhub/internal/disktest"
	"github.com/wxhub/wxhub/wecom/sim"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// The embedded NATS store on a real file system that fills up: callbacks are
// refused with 503 while JetStream cannot write (WeChat retries them), /readyz
// says so, and once space is freed the hub recovers by itself. Every callback
// the gateway acknowledged, before, during and after the fault, is answered;
// nothing is dead-lettered.
func TestDiskFullRefusesThenRecoversWithoutLoss(t *testing.T) {
	disk := disktest.Small(t, 96<<20)
	logs := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	e := startE2E(t, withConfig(func(c *config.Config) { c.NATS.DataDir = filepath.Join(disk, "nats") }),
		hubtest.WithLogger(logs))
	ctx := waitCtx(t, 90*time.Second)

	acked := map[string]bool{}
	say := func(text string) *sim.Delivery {
		d, _ := e.sim.Say(ctx, "helpdesk", "wangwu", "echo "+text)
		if d != nil && d.Status == 200 {
			acked[text] = true
		}
		return d
	}
	if d := say("before"); d == nil || d.Status != 200 {
		t.Fatalf("callback before the fault: %+v", d)
	}

	filler := filepath.Join(disk, "filler")
	disktest.Fill(t, filler)
	// Callbacks go on arriving while the disk is full: the first write that hits
	// ENOSPC turns JetStream off; from then on the gateway answers 503.
	var refused int
	for i := 0; i < 7 && refused == 0; i++ {
		d := say(fmt.Sprintf("during %d", i))
		if d != nil {
			t.Logf("during %d: %d after %d tries, %s: %v", i, d.Status, d.Attempts, d.Duration, d.Failures)
		}
		if d != nil && d.Status == http.StatusServiceUnavailable {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("no callback was refused while the disk was full")
	}
	if code, body := getStatus(t, e.h.URL()+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz = %d %q while the disk is full, want 503", code, body)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _ := getStatus(t, e.h.URL()+"/readyz")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d 30 s after space came back", code)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if d := say("after"); d == nil || d.Status != 200 {
		t.Fatalf("callback after recovery: %+v", d)
	}

	for text := range acked {
		if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool {
			return m.User == "wangwu" && strings.HasSuffix(m.Content, text)
		}); err != nil {
			dumpBus(t, e)
			t.Fatalf("acknowledged callback %q never answered: %v", text, err)
		}
	}
	// Streams and consumers reloaded from the same store: nothing answered twice.
	answers := map[string]int{}
	for _, m := range e.sim.SentTo("wangwu") {
		answers[m.Content]++
	}
	for content, n := range answers {
		if n != 1 {
			t.Errorf("%q sent %d times", content, n)
		}
	}
	if n := streamMsgs(t, e, bus.StreamDLQ); n != 0 {
		t.Fatalf("%d messages dead-lettered by a storage fault", n)
	}
	t.Logf("%d callbacks acknowledged and answered, %d refused with 503 while the disk was full", len(acked), refused)
}

func getStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 512)
	n, _ := resp.Body.Read(buf)
	b.Write(buf[:n])
	return resp.StatusCode, b.String()
}

func streamMsgs(t *testing.T, e *e2e, name string) uint64 {
	t.Helper()
	ctx := waitCtx(t, 10*time.Second)
	s, err := e.bus.JS().Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func dumpBus(t *testing.T, e *e2e) {
	ctx := waitCtx(t, 10*time.Second)
	for _, name := range []string{bus.StreamIn, bus.StreamRoute, bus.StreamOut} {
		s, err := e.bus.JS().Stream(ctx, name)
		if err != nil {
			t.Logf("%s: %v", name, err)
			continue
		}
		info, _ := s.Info(ctx)
		t.Logf("%s: %+v", name, info.State)
		l := s.ListConsumers(ctx)
		for ci := range l.Info() {
			t.Logf("  %s pending=%d ackpending=%d delivered=%d ackfloor=%d filter=%s", ci.Name, ci.NumPending, ci.NumAckPending, ci.Delivered.Stream, ci.AckFloor.Stream, ci.Config.FilterSubject)
		}
	}
}
