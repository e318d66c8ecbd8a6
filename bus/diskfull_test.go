package bus_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/internal/disktest"
)

// A full disk under the embedded store: writes are refused at once
// (ErrStorage) and Ready fails; once space is freed the bus restarts
// JetStream by itself and every message stored before the fault is still
// there, in order, with the stream's sequence going on.
func TestDiskFullThenFreed(t *testing.T) {
	disk := disktest.Small(t, 64<<20)
	b := openBus(t, filepath.Join(disk, "nats"))
	defer b.Close()
	ctx := testCtx(t)
	subj := bus.InSubject("wecom", "helpdesk", "text")
	stored := 0
	publish := func(id string) error {
		_, err := b.PublishWithin(ctx, time.Second, subj, id, nil, []byte(`{"n":"`+id+`"}`))
		if err == nil {
			stored++
		}
		return err
	}
	for i := 0; i < 5; i++ {
		if err := publish(fmt.Sprintf("before-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	filler := filepath.Join(disk, "filler")
	disktest.Fill(t, filler)
	var failed error
	for i := 0; i < 100 && failed == nil; i++ {
		failed = publish(fmt.Sprintf("during-%d", i))
	}
	if failed == nil {
		t.Fatal("100 publishes stored on a full disk")
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.Ready(ctx) == nil {
		if time.Now().After(deadline) {
			t.Fatal("Ready stays nil while the store cannot write")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := publish("refused"); !errors.Is(err, bus.ErrStorage) {
		t.Fatalf("publish during the fault: %v, want ErrStorage", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for b.Ready(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready 20 s after space came back: %v", b.Ready(ctx))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := publish("after"); err != nil {
		t.Fatalf("publish after recovery: %v", err)
	}
	s, err := b.JS().Stream(ctx, bus.StreamIn)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(stored) || info.State.LastSeq != uint64(stored) {
		t.Fatalf("WXHUB_IN after the fault: %d messages, last seq %d; want %d stored before, during and after", info.State.Msgs, info.State.LastSeq, stored)
	}
}
