package bus

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// KeepInProgress tells the server every interval that msgs are still being
// worked on (InProgress), so a handler or a retry that outlasts AckWait does
// not get them redelivered, until stop is called; after stop returns, no
// InProgress is sent. A timer, not a goroutine per message: most work is done
// long before it first fires. An InProgress for a message already settled
// fails harmlessly.
func KeepInProgress(every time.Duration, msgs ...jetstream.Msg) (stop func()) {
	var (
		mu      sync.Mutex
		stopped bool
		t       *time.Timer
	)
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(every, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		for _, m := range msgs {
			_ = m.InProgress()
		}
		t.Reset(every)
	})
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	}
}
