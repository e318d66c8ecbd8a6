package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-resty/resty/v2"
	"github.com/nats-io/nats.go/jetstream"
	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/connectors/directorysync"
	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/hub/hubtest"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom/sim"
)

// Two corps in one hub (the demo corp and the dealer corp of the simulator,
// wecom.corps[]): each corp's callback is routed with its data.corp and
// answered with its own corp's token; a push to the dealer's department 2
// reaches the dealer's members, not the demo corp's department 2; the
// directory answers per corp; a change_contact in the dealer corp changes
// the dealer's directory and nothing of the demo corp's.
func TestE2ETwoCorps(t *testing.T) {
	dealer := sim.DemoDealerCorpID
	e := startE2E(t, hubtest.WithSim(sim.AddDemoDealer), withConfig(func(c *config.Config) {
		hub.DemoIdentity(c, c.WeCom.APIBase, "http://"+c.Gateway.Listen)
		if c.Connectors == nil {
			c.Connectors = map[string]yaml.Node{}
		}
		c.Connectors["directory"] = hub.Section(directorysync.Config{}) // change_contact -> refresh
	}))
	ctx := waitCtx(t, 60*time.Second)
	main := e.cfg.WeCom.CorpID
	if main == dealer || len(e.cfg.WeCom.CorpIDs()) != 2 {
		t.Fatalf("corps %v", e.cfg.WeCom.CorpIDs())
	}

	// Callbacks of each corp's app, answered through that app.
	if _, err := e.sim.Say(ctx, "helpdesk", "zhangsan", "你好"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.Say(ctx, sim.DemoDealerApp, "chenyi", "你好"); err != nil {
		t.Fatal(err)
	}
	for user, app := range map[string]string{"zhangsan": "helpdesk", "chenyi": sim.DemoDealerApp} {
		m, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == user })
		if err != nil {
			t.Fatalf("no reply to %s: %v", user, err)
		}
		if m.App != app {
			t.Errorf("reply to %s through %s, want %s", user, m.App, app)
		}
	}
	corps := eventCorps(ctx, t, e)
	if corps["zhangsan"] != main || corps["chenyi"] != dealer {
		t.Fatalf("data.corp of the events: %v, want zhangsan %s, chenyi %s", corps, main, dealer)
	}
	// The simulator gives a token only for the app's own corp id; each is kept
	// under its corp.
	tokens, err := e.bus.KV(ctx, bus.BucketTokens)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{bus.TokenKey(main, 1000002), bus.TokenKey(dealer, sim.DemoDealerAgent)} {
		if _, err := tokens.Get(ctx, key); err != nil {
			t.Fatalf("token %s: %v", key, err)
		}
	}
	if st := e.sim.Stats(); st.Errors["40013"]+st.Errors["40001"] != 0 {
		t.Fatalf("token errors %v", st.Errors)
	}

	// The directory of each corp.
	api := resty.New().SetBaseURL("http://" + e.hubAddr).SetAuthToken(hub.DemoAPIKey)
	waitStatus(ctx, t, api, "/api/v1/directory/users/zhangsan", http.StatusOK)
	waitStatus(ctx, t, api, "/api/v1/directory/users/chenyi?corp="+dealer, http.StatusOK)
	for path, want := range map[string]int{
		"/api/v1/directory/users/chenyi":                     http.StatusNotFound, // the key's default: the first corp
		"/api/v1/directory/users/zhangsan?corp=" + dealer:    http.StatusNotFound,
		"/api/v1/directory/users/zhangsan?corp=" + main:      http.StatusOK,
		"/api/v1/directory/users/zhangsan?corp=wwnotacorp01": http.StatusBadRequest,
	} {
		if resp, err := api.R().SetContext(ctx).Get(path); err != nil || resp.StatusCode() != want {
			t.Errorf("GET %s: %v %d, want %d", path, err, resp.StatusCode(), want)
		}
	}
	var u schemas.DirUser
	if resp, err := api.R().SetContext(ctx).SetResult(&u).Get("/api/v1/directory/users/chenyi?corp=" + dealer); err != nil || resp.StatusCode() != 200 || u.EmployeeNo != "D001" {
		t.Fatalf("dealer's chenyi: %v %+v", err, u)
	}

	// A push to the dealer's department 2: its members, through the dealer's app.
	resp, err := api.R().SetContext(ctx).SetBody(`{"app":"dealer","toparty":"2","msgtype":"text","text":{"content":"经销商季度会议"}}`).Post("/api/v1/messages")
	if err != nil || resp.StatusCode() != http.StatusAccepted {
		t.Fatalf("push: %v %d %s", err, resp.StatusCode(), resp.Body())
	}
	for _, user := range []string{"chenyi", "liuer"} {
		m, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == user && strings.Contains(m.Content, "季度会议") })
		if err != nil {
			t.Fatalf("%s (dealer's department 2) got nothing: %v", user, err)
		}
		if m.App != sim.DemoDealerApp || strings.Contains(string(m.Body), "toparty") {
			t.Errorf("sent through %s, body %s: want the dealer's app and the members", m.App, m.Body)
		}
	}
	for _, user := range []string{"zhangsan", "wangwu", "zhousan"} { // the demo corp's department 2, the dealer's 3
		for _, m := range e.sim.SentTo(user) {
			if strings.Contains(m.Content, "季度会议") {
				t.Errorf("%s got the dealer's department 2 message", user)
			}
		}
	}

	// change_contact in the dealer corp: the dealer's directory changes, the
	// first corp's keys keep their revisions.
	dir, err := e.bus.KV(ctx, bus.BucketDirectory)
	if err != nil {
		t.Fatal(err)
	}
	waitKey(ctx, t, dir, bus.DirMetaKey(""))
	waitKey(ctx, t, dir, bus.DirMetaKey(bus.DirPrefix(dealer)))
	before := revisions(ctx, t, dir, "user.>", "dept.>", "tag.>", "meta")
	moved := sim.User{UserID: "liuer", Name: "刘二", Department: []int64{1, 3}, Position: "华南经理"}
	if d, err := e.sim.PutUser(ctx, sim.DemoDealerApp, moved); err != nil || d.Status != 200 {
		t.Fatalf("change_contact: %+v %v", d, err)
	}
	for {
		var u schemas.DirUser
		resp, err := api.R().SetContext(ctx).SetResult(&u).Get("/api/v1/directory/users/liuer?corp=" + dealer)
		if err == nil && resp.StatusCode() == 200 && u.Position == "华南经理" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the dealer's directory never saw the change: %+v", u)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if after := revisions(ctx, t, dir, "user.>", "dept.>", "tag.>", "meta"); !sameRevisions(before, after) {
		t.Fatalf("the first corp's directory changed: %v -> %v", before, after)
	}
	if resp, _ := api.R().SetContext(ctx).Get("/api/v1/directory/users/liuer"); resp.StatusCode() != http.StatusNotFound {
		t.Fatalf("liuer in the first corp's directory: %d", resp.StatusCode())
	}
}

// eventCorps maps the sender of every text event in WXHUB_IN to its data.corp.
func eventCorps(ctx context.Context, t *testing.T, e *e2e) map[string]string {
	t.Helper()
	in, err := e.bus.JS().Stream(ctx, bus.StreamIn)
	if err != nil {
		t.Fatal(err)
	}
	info, err := in.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := in.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		var ev schemas.Event
		if json.Unmarshal(m.Data, &ev) == nil && ev.Data.MsgType == "text" {
			out[ev.Data.User] = ev.Data.Corp
		}
	}
	return out
}

func waitStatus(ctx context.Context, t *testing.T, api *resty.Client, path string, want int) {
	t.Helper()
	for {
		resp, err := api.R().SetContext(ctx).Get(path)
		if err == nil && resp.StatusCode() == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("GET %s never answered %d", path, want)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func waitKey(ctx context.Context, t *testing.T, kv jetstream.KeyValue, key string) {
	t.Helper()
	for {
		if _, err := kv.Get(ctx, key); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("key %s never written", key)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// revisions are the revisions of the keys matching filters.
func revisions(ctx context.Context, t *testing.T, kv jetstream.KeyValue, filters ...string) map[string]uint64 {
	t.Helper()
	l, err := kv.ListKeysFiltered(ctx, filters...)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for k := range l.Keys() {
		if e, err := kv.Get(ctx, k); err == nil {
			out[k] = e.Revision()
		}
	}
	if len(out) == 0 {
		t.Fatal("no keys")
	}
	return out
}

func sameRevisions(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
