// Package conformance is the test suite every connector runs against itself
// before it counts as production-ready, whatever its language: with an
// embedded NATS server (and its own restricted NATS user) and a legacy system
// that can be made to fail, it checks that the connector
//
//   - replies to its sample events, with valid wxhub.outbound/v1 messages that
//     continue the event's trace, and acks them;
//   - retries when its legacy system times out or answers 500, and succeeds
//     when it comes back, without dead-lettering;
//   - sends a poison event (legacy always failing) to the DLQ after MaxDeliver
//     deliveries, and an unparsable event at once, without blocking the user;
//   - does not reply twice to a redelivered event;
//   - loses nothing in flight on shutdown: in-flight events are finished and
//     answered, queued ones are left for the next start;
//   - and that its NATS user cannot read another connector's events.
//
// A Go connector (the ERP connector's own test, connectors/erp/conformance_test.go,
// is a complete one; `wxhub new connector NAME` generates another):
//
//	func TestConformance(t *testing.T) {
//		legacy := conformance.NewLegacyServer(t, fakeERP()) // your fake of the legacy system
//		conformance.Run(t, conformance.Connector{
//			Name:  "erp",
//			Start: conformance.GoHandler(myHandler(legacy.URL())), // or a func(t, env) using env.Bus and env.Options
//			Samples: []conformance.Sample{{Name: "order", Event: conformance.Text("订单 1001"),
//				Want: conformance.ReplyContains("1001")}},
//			Legacy:       legacy,
//			LegacySample: conformance.Sample{Event: conformance.Text("订单 1001"), Want: conformance.ReplyContains("1001")},
//		})
//	}
//
// Rules of the kit: each case runs on a fresh embedded NATS server where the
// connector logs in as its own restricted user (Env); the kit replaces each
// sample event's id, time and user (every case uses its own users, so a fake
// legacy system must answer any user); the legacy sample must call Legacy once
// per attempt, with a timeout of 1-5 s.
//
// Another language: Start = conformance.Process([]string{"node", "index.js"}, dir, "LEGACY_URL="+legacy.URL()),
// and the process reads its settings from the WXHUB_* variables (see Process).
package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

// Connector describes the connector under test.
type Connector struct {
	// Name of the connector (its routing name and its NATS user).
	Name string
	// Start starts the connector against env and returns a stop function that
	// shuts it down gracefully and returns when it has exited. It is called
	// once per case, and twice in the shutdown case. See GoHandler and Process.
	Start func(t *testing.T, env Env) (stop func())
	// Samples are events the connector answers without failing. At least one.
	Samples []Sample
	// Legacy is the connector's legacy system, with a failure switch.
	Legacy Legacy
	// LegacySample is an event whose handling calls Legacy once per attempt
	// and which is answered when Legacy works. The connector's timeout on
	// that call should be 1-5 s: the timeout case waits for it twice, and the
	// shutdown case holds calls for a moment and expects them to complete.
	LegacySample Sample
	// MaxDeliver the connector must be configured with (Env.MaxDeliver).
	// Default 4; at least 3, as the retry cases fail two attempts.
	MaxDeliver int
	// Partitions of the test bus. Default 4.
	Partitions int
	// Timeout bounds each wait of the kit. Default 30s.
	Timeout time.Duration
}

// Sample is one event and what its replies must look like.
type Sample struct {
	Name string
	// Event to route; the kit sets a fresh ID, Time, SpecVersion, Source,
	// Type and user (each case uses its own users), keeping the rest.
	Event schemas.Event
	// Want checks the replies to the event (all outbound messages with
	// in_reply_to = the event id); the kit polls until it returns nil. Nil:
	// at least one reply.
	Want func(replies []schemas.Outbound) error
}

// Env is what the connector under test gets to connect with.
type Env struct {
	// URL of the embedded NATS server, and the connector's own login: a user
	// with bus.ConnectorPermissions(Name), who must use InboxPrefix.
	URL, User, Password, InboxPrefix string
	Partitions, MaxDeliver           int
	// BackoffMillis is the retry delay the connector should use (short).
	BackoffMillis int
	// Bus is a connection with the connector's login (bus.Dial), for Go
	// connectors; Options are runner options that go with the kit (Name,
	// MaxDeliver, Partitions, short backoff and poll). Both are closed or
	// unused after the case.
	Bus     *bus.Bus
	Options connectors.Options

	// died, when set by the kit, is told that the connector exited by itself,
	// so that waits fail at once instead of at their deadline.
	died func(error)
}

// Text is an event with a WeCom text message, for Sample.Event.
func Text(content string) schemas.Event {
	return schemas.Event{Data: schemas.EventData{Channel: schemas.ChannelWeCom, App: "helpdesk", MsgType: "text", Content: content}}
}

// ReplyContains wants a reply whose body contains every one of subs.
func ReplyContains(subs ...string) func([]schemas.Outbound) error {
	return func(out []schemas.Outbound) error {
		for _, o := range out {
			ok := true
			for _, s := range subs {
				ok = ok && strings.Contains(string(o.Data.Body), s)
			}
			if ok {
				return nil
			}
		}
		return fmt.Errorf("no reply contains %q among %d replies", subs, len(out))
	}
}

// Run runs every case as a subtest of t.
func Run(t *testing.T, c Connector) {
	t.Helper()
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		t.Fatalf("conformance: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.legacy && c.Legacy == nil {
				t.Fatalf("conformance: case %s needs Connector.Legacy", tc.name)
			}
			h := newHarness(t, c)
			tc.run(t, h)
		})
	}
}

var errConnector = errors.New("conformance: invalid Connector")

func (c Connector) withDefaults() Connector {
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 4
	}
	if c.Partitions == 0 {
		c.Partitions = 4
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	return c
}

func (c Connector) validate() error {
	switch {
	case c.Name == "":
		return fmt.Errorf("%w: Name is required", errConnector)
	case c.Start == nil:
		return fmt.Errorf("%w: Start is required", errConnector)
	case len(c.Samples) == 0:
		return fmt.Errorf("%w: at least one Sample is required", errConnector)
	case c.Legacy == nil:
		return fmt.Errorf("%w: Legacy is required (the retry, poison and shutdown cases make it fail)", errConnector)
	case c.MaxDeliver < 3:
		return fmt.Errorf("%w: MaxDeliver %d, want >= 3", errConnector, c.MaxDeliver)
	}
	return nil
}

// harness is one case's world: a fresh embedded server with the connector's user.
type harness struct {
	t   *testing.T
	c   Connector
	hub *bus.Bus // full access: routes events, reads WXHUB_OUT and the DLQ
	env Env
	seq int

	caseCtx context.Context
	dead    atomic.Pointer[error] // the connector exited by itself
}

func newHarness(t *testing.T, c Connector) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	pass := randHex(16)
	hub, err := bus.Open(ctx, bus.Config{
		DataDir: t.TempDir(), Port: -1, Partitions: c.Partitions, Name: "conformance-hub",
		Users: []bus.UserConfig{{Name: c.Name, Password: pass, Connector: c.Name}},
	}, zaptest.NewLogger(t).Named("hub"))
	if err != nil {
		t.Fatalf("conformance: bus: %v", err)
	}
	t.Cleanup(func() { _ = hub.Close() })
	env := Env{
		URL: hub.ClientURL(), User: c.Name, Password: pass, InboxPrefix: bus.InboxPrefix(c.Name),
		Partitions: c.Partitions, MaxDeliver: c.MaxDeliver, BackoffMillis: 50,
	}
	env.Bus, err = bus.Dial(ctx, bus.Config{URL: env.URL, User: env.User, Password: env.Password, InboxPrefix: env.InboxPrefix,
		Partitions: c.Partitions, Name: "connector-" + c.Name}, zaptest.NewLogger(t).Named("connector-bus"))
	if err != nil {
		t.Fatalf("conformance: connector login: %v", err)
	}
	t.Cleanup(func() { _ = env.Bus.Close() })
	env.Options = connectors.Options{
		Name: c.Name, MaxDeliver: c.MaxDeliver, Partitions: c.Partitions,
		Backoff:  connectors.ConstantBackoff(time.Duration(env.BackoffMillis) * time.Millisecond),
		PollWait: 100 * time.Millisecond, Logger: zaptest.NewLogger(t).Named(c.Name),
	}
	caseCtx, cancelCase := context.WithTimeout(context.Background(), 10*c.Timeout)
	t.Cleanup(cancelCase)
	h := &harness{t: t, c: c, hub: hub, caseCtx: caseCtx}
	env.died = func(err error) { h.dead.Store(&err) }
	h.env = env
	return h
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
