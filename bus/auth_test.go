package bus_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

const authPartitions = 2

// openWithUsers runs the embedded server with per-connector users erp and crm.
func openWithUsers(t *testing.T) *bus.Bus {
	t.Helper()
	b, err := bus.Open(testCtx(t), bus.Config{
		DataDir: t.TempDir(), Port: -1, Partitions: authPartitions,
		Users: []bus.UserConfig{
			{Name: "erp", Password: "erp-secret", Connector: "erp"},
			{Name: "crm", Password: "crm-secret", Connector: "crm"},
		},
	}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// asyncErrs collects the server's -ERR (permission violations arrive asynchronously).
type asyncErrs struct {
	mu   sync.Mutex
	errs []string
}

func (a *asyncErrs) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.errs = append(a.errs, err.Error())
}

func (a *asyncErrs) waitFor(t *testing.T, substr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.mu.Lock()
		for _, e := range a.errs {
			if strings.Contains(e, substr) {
				a.mu.Unlock()
				return
			}
		}
		got := append([]string(nil), a.errs...)
		a.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no async error containing %q; got %q", substr, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func dialAs(t *testing.T, b *bus.Bus, user, pass, connector string) (*nats.Conn, *asyncErrs) {
	t.Helper()
	errs := &asyncErrs{}
	nc, err := nats.Connect(b.ClientURL(), nats.UserInfo(user, pass), nats.CustomInboxPrefix(bus.InboxPrefix(connector)),
		nats.ErrorHandler(errs.handler), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

// The embedded server requires a login even with no nats.users: a local
// process without the install's credentials can neither read the access
// tokens nor publish to wxhub.out.
func TestEmbeddedServerRequiresLoginByDefault(t *testing.T) {
	dir := t.TempDir()
	b := openBus(t, dir)
	defer b.Close()
	if nc, err := nats.Connect(b.ClientURL(), nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Fatal("anonymous connect accepted")
	}
	if nc, err := nats.Connect(b.ClientURL(), nats.UserInfo(bus.LoginHub, "guess"), nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Fatal("wrong password accepted")
	}
	fi, err := os.Stat(filepath.Join(dir, bus.CredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s mode %v, want 0600", bus.CredentialsFile, fi.Mode().Perm())
	}
	// A second start keeps the same logins (a connector's password must not change under it).
	c1, err := bus.LoadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	b2 := openBus(t, dir)
	defer b2.Close()
	c2, _ := bus.LoadCredentials(dir)
	if c1.Users[bus.LoginHub] == "" || c1.Users[bus.LoginHub] != c2.Users[bus.LoginHub] {
		t.Fatal("credentials changed across restarts")
	}
}

// Only the sender's, the gateway's and the hub's logins reach wxhub_tokens;
// each generated login otherwise does its job.
func TestGeneratedLoginsAndTheTokenBucket(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	b, err := bus.Open(ctx, bus.Config{DataDir: dir, Port: -1, Connectors: []string{"erp"}}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	kv, _ := b.KV(ctx, bus.BucketTokens)
	if _, err := kv.Put(ctx, "helpdesk", []byte(`{"token":"secret-token"}`)); err != nil {
		t.Fatal(err)
	}
	creds, err := bus.LoadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		login      string
		readsToken bool
	}{
		{bus.LoginSender, true},
		{bus.LoginGateway, true},
		{bus.LoginRouter, false},
		{bus.LoginDashboard, false},
		{bus.LoginCLI, false},
		{bus.ConnectorLogin("erp"), false},
	}
	for _, tt := range tests {
		t.Run(tt.login, func(t *testing.T) {
			nc, err := nats.Connect(b.ClientURL(), nats.UserInfo(tt.login, creds.Users[tt.login]),
				nats.CustomInboxPrefix(inboxFor(tt.login)), nats.Timeout(5*time.Second))
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer nc.Close()
			_, err = nc.Request("$JS.API.DIRECT.GET.KV_"+bus.BucketTokens+".$KV."+bus.BucketTokens+".helpdesk", nil, 2*time.Second)
			if got := err == nil; got != tt.readsToken {
				t.Fatalf("direct get of the token: err %v, want readable %v", err, tt.readsToken)
			}
			sub, err := nc.SubscribeSync("$KV." + bus.BucketTokens + ".>")
			if err == nil {
				nc.Flush()
				if _, err := kv.Put(ctx, "helpdesk", []byte(`{"token":"next"}`)); err != nil {
					t.Fatal(err)
				}
				_, err = sub.NextMsg(500 * time.Millisecond)
			}
			if got := err == nil; got != tt.readsToken {
				t.Fatalf("watching token puts: err %v, want readable %v", err, tt.readsToken)
			}
		})
	}
}

func inboxFor(login string) string {
	if name, ok := strings.CutPrefix(login, "connector-"); ok {
		return bus.InboxPrefix(name)
	}
	return "_INBOX"
}

// A process of the install connecting by URL finds its login in the data dir:
// the router's Open declares everything but the token bucket it may not see.
func TestProcessesOfTheInstallFindTheirLogin(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	b := openBus(t, dir)
	defer b.Close()
	r, err := bus.Open(ctx, bus.Config{URL: b.ClientURL(), DataDir: dir, Login: bus.LoginFor([]string{"router"})}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("router Open: %v", err)
	}
	defer r.Close()
	if _, err := r.KV(ctx, bus.BucketStatus); err != nil {
		t.Fatalf("router status bucket: %v", err)
	}
	if _, err := bus.Dial(ctx, bus.Config{URL: b.ClientURL(), DataDir: t.TempDir()}, nil); err == nil {
		t.Fatal("dial without the install's credentials accepted")
	}
}

func TestLoginRequiredWhenUsersConfigured(t *testing.T) {
	b := openWithUsers(t)
	tests := []struct {
		name       string
		user, pass string
		wantErr    bool
	}{
		{"anonymous", "", "", true},
		{"wrong password", "erp", "nope", true},
		{"erp", "erp", "erp-secret", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []nats.Option
			if tt.user != "" {
				opts = append(opts, nats.UserInfo(tt.user, tt.pass))
			}
			nc, err := nats.Connect(b.ClientURL(), opts...)
			if (err != nil) != tt.wantErr {
				t.Fatalf("connect err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil {
				nc.Close()
			}
		})
	}
	// The hub's own connection (random full-access login) declared everything.
	if err := b.Ready(testCtx(t)); err != nil {
		t.Fatalf("hub not ready: %v", err)
	}
}

// The erp user does all a connector does on its own subjects (as the Go runner
// does them, through bus.Dial) ...
func TestConnectorUserWorksOnItsOwnSubjects(t *testing.T) {
	b := openWithUsers(t)
	ctx := testCtx(t)
	eb, err := bus.Dial(ctx, bus.Config{URL: b.ClientURL(), User: "erp", Password: "erp-secret",
		InboxPrefix: bus.InboxPrefix("erp"), Partitions: authPartitions}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer eb.Close()

	ev := &schemas.Event{SpecVersion: schemas.SpecVersion, ID: "ev-1", Source: "wecom/helpdesk", Type: "wxhub.in.text",
		Data: schemas.EventData{Channel: "wecom", App: "helpdesk", User: "zhangsan", MsgType: "text", Content: "hi"}}
	if _, err := b.PublishRoute(ctx, "erp", 0, ev); err != nil {
		t.Fatal(err)
	}
	p := bus.Partition("zhangsan", authPartitions)
	cons, err := eb.JS().CreateOrUpdateConsumer(ctx, bus.StreamRoute, connectors.ConsumerConfig("erp", p, 30*time.Second))
	if err != nil {
		t.Fatalf("create own consumer: %v", err)
	}
	if _, err := eb.JS().Consumer(ctx, bus.StreamRoute, connectors.ConsumerName("erp", p)); err != nil {
		t.Fatalf("bind own consumer: %v", err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got jetstream.Msg
	for m := range batch.Messages() {
		got = m
	}
	if got == nil {
		t.Fatalf("no event pulled: %v", batch.Error())
	}
	if err := got.InProgress(); err != nil {
		t.Fatalf("in progress: %v", err)
	}
	if _, err := eb.PublishJSON(ctx, bus.OutSubject("helpdesk"), "ev-1/0", schemas.SchemaOutbound, map[string]string{"x": "y"}); err != nil {
		t.Fatalf("publish reply: %v", err)
	}
	if err := eb.DeadLetter(ctx, "connector:erp", got, "test", 1); err != nil {
		t.Fatalf("dead letter: %v", err)
	}
	if err := got.DoubleAck(ctx); err != nil {
		t.Fatalf("ack: %v", err)
	}
}

// ... and cannot reach crm's events in any way.
func TestConnectorUserCannotReadAnotherConnector(t *testing.T) {
	b := openWithUsers(t)
	ctx := testCtx(t)
	// crm's consumers exist and hold an event.
	for p := range authPartitions {
		if _, err := b.JS().CreateOrUpdateConsumer(ctx, bus.StreamRoute, connectors.ConsumerConfig("crm", p, 30*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	ev := &schemas.Event{ID: "secret", Data: schemas.EventData{App: "helpdesk", User: "lisi"}}
	if _, err := b.PublishRoute(ctx, "crm", 0, ev); err != nil {
		t.Fatal(err)
	}
	crm0 := connectors.ConsumerName("crm", bus.Partition("lisi", authPartitions))

	tests := []struct {
		name      string
		inbox     string // the erp connection's inbox prefix
		do        func(nc *nats.Conn) error
		wantAsync string // permission violation reported by the server
	}{
		{"subscribe to crm's route subject", "erp", func(nc *nats.Conn) error {
			_, err := nc.SubscribeSync(bus.RouteFilter("crm"))
			return err
		}, "Permissions Violation for Subscription to \"wxhub.route.crm.>\""},
		{"subscribe to all route subjects", "erp", func(nc *nats.Conn) error {
			_, err := nc.SubscribeSync(bus.SubjectRouteAll)
			return err
		}, "Permissions Violation for Subscription"},
		{"subscribe to other connections' inboxes", "erp", func(nc *nats.Conn) error {
			_, err := nc.SubscribeSync("_INBOX.>")
			return err
		}, "Permissions Violation for Subscription to \"_INBOX.>\""},
		{"pull from crm's consumer", "erp", func(nc *nats.Conn) error {
			_, err := nc.Request("$JS.API.CONSUMER.MSG.NEXT."+bus.StreamRoute+"."+crm0, []byte(`{"batch":1,"no_wait":true}`), time.Second)
			return err
		}, "Permissions Violation for Publish to \"$JS.API.CONSUMER.MSG.NEXT"},
		{"crm consumer info", "erp", func(nc *nats.Conn) error {
			js, _ := jetstream.New(nc)
			_, err := js.Consumer(context.Background(), bus.StreamRoute, crm0)
			return err
		}, "Permissions Violation for Publish to \"$JS.API.CONSUMER.INFO"},
		{"own consumer name with crm's filter", "erp", func(nc *nats.Conn) error {
			js, _ := jetstream.New(nc)
			cfg := connectors.ConsumerConfig("erp", 0, 30*time.Second)
			cfg.FilterSubject = bus.RouteSubject("crm", 0)
			_, err := js.CreateOrUpdateConsumer(context.Background(), bus.StreamRoute, cfg)
			return err
		}, "Permissions Violation for Publish to \"$JS.API.CONSUMER.CREATE"},
		{"read crm's event from the stream directly", "erp", func(nc *nats.Conn) error {
			_, err := nc.Request("$JS.API.DIRECT.GET."+bus.StreamRoute, []byte(`{"last_by_subj":"wxhub.route.crm.0"}`), time.Second)
			return err
		}, "Permissions Violation for Publish to \"$JS.API.DIRECT.GET"},
		{"pretend to be crm's dead-letter stage", "erp", func(nc *nats.Conn) error {
			return nc.Publish(bus.DLQSubject("connector:crm"), []byte("{}"))
		}, "Permissions Violation for Publish to \"wxhub.dlq.connector:crm\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc, errs := dialAs(t, b, "erp", "erp-secret", tt.inbox)
			err := tt.do(nc)
			_ = nc.Flush()
			errs.waitFor(t, tt.wantAsync)
			if err == nil && strings.Contains(tt.name, "pull") {
				t.Fatalf("pull from crm's consumer succeeded")
			}
		})
	}
	// Nothing leaked: crm's event is still there for crm.
	nc, _ := dialAs(t, b, "crm", "crm-secret", "crm")
	js, _ := jetstream.New(nc)
	c, err := js.Consumer(ctx, bus.StreamRoute, crm0)
	if err != nil {
		t.Fatalf("crm binds its consumer: %v", err)
	}
	batch, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		n++
		_ = m.Ack()
	}
	if n != 1 {
		t.Fatalf("crm pulled %d events, want its 1 (err %v)", n, batch.Error())
	}
}

func TestUsersConfigValidation(t *testing.T) {
	tests := []struct {
		name    string
		given   bus.Config
		wantErr string
	}{
		{"ok", bus.Config{Users: []bus.UserConfig{{Name: "erp", Password: "x", Connector: "erp"}}}, ""},
		{"no password", bus.Config{Users: []bus.UserConfig{{Name: "erp"}}}, "nats.users[0].password"},
		{"duplicate", bus.Config{Users: []bus.UserConfig{{Name: "a", Password: "x"}, {Name: "a", Password: "y"}}}, "nats.users[1].name"},
		{"bad name", bus.Config{Users: []bus.UserConfig{{Name: "a b", Password: "x"}}}, "nats.users[0].name"},
		{"bad connector", bus.Config{Users: []bus.UserConfig{{Name: "a", Password: "x", Connector: "e.rp"}}}, "nats.users[0].connector"},
		{"with cluster url", bus.Config{URL: "nats://x:4222", Users: []bus.UserConfig{{Name: "a", Password: "x"}}}, "nats.users"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.given.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected: %v", err)
				}
				return
			}
			if !errors.Is(err, bus.ErrConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want ErrConfig naming %s", err, tt.wantErr)
			}
		})
	}
}

// TestConnectorUserReadsPINStatusNotHash: a connector may ask whether a PIN
// was verified (connectors.PINVerifiedWithin) but cannot read the hash.
func TestConnectorUserReadsPINStatusNotHash(t *testing.T) {
	b := openWithUsers(t)
	ctx := testCtx(t)
	kv, err := b.KV(ctx, bus.BucketPIN)
	if err != nil {
		t.Fatal(err)
	}
	st := `{"user":"zhangsan","set":true,"verified_at":"` + time.Now().UTC().Format(time.RFC3339Nano) + `"}`
	if _, err := kv.Put(ctx, bus.PINStatusKey("zhangsan"), []byte(st)); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, bus.PINKey("zhangsan"), []byte(`{"user":"zhangsan","hash":"c2VjcmV0"}`)); err != nil {
		t.Fatal(err)
	}
	eb, err := bus.Dial(ctx, bus.Config{URL: b.ClientURL(), User: "erp", Password: "erp-secret",
		InboxPrefix: bus.InboxPrefix("erp"), Partitions: authPartitions}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer eb.Close()
	ok, err := connectors.PINVerifiedWithin(ctx, eb, "zhangsan", time.Minute)
	if err != nil || !ok {
		t.Fatalf("PINVerifiedWithin as connector erp: %v, %v", ok, err)
	}
	ekv, err := eb.KV(ctx, bus.BucketPIN)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if e, err := ekv.Get(short, bus.PINKey("zhangsan")); err == nil {
		t.Fatalf("connector read the PIN hash: %s", e.Value())
	}
}
