package directory_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/connectors/directorysync"
	"github.com/wxhub/wxhub/directory"
	"github.com/wxhub/wxhub/internal/idtest"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom"
	"github.com/wxhub/wxhub/wecom/sim"
)

// twoCorps is the demo corp and the dealer corp, each with its own syncer,
// and one store that reads both.
type twoCorps struct {
	sim          *sim.Server
	main, dealer *directory.Syncer
	store        *directory.Store
	mainID       string
}

func startTwoCorps(t *testing.T) (*twoCorps, *env) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg := sim.DemoConfig()
	cfg.GatewayURL = ""
	sim.AddDemoDealer(&cfg)
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	e := &env{t: t, sim: s, b: bustest.Open(t, bus.Config{})}
	if e.kv, err = e.b.KV(ctx, bus.BucketDirectory); err != nil {
		t.Fatal(err)
	}
	w := wecom.Config{CorpID: cfg.CorpID, Apps: []wecom.AppConfig{{Name: "helpdesk", AgentID: 1000002}},
		Corps: []wecom.CorpConfig{{CorpID: sim.DemoDealerCorpID, Apps: []wecom.AppConfig{{Name: sim.DemoDealerApp, AgentID: sim.DemoDealerAgent}}}}}.WithDefaults()
	dc := directory.Config{App: "helpdesk"}
	corps, err := dc.Corps(w)
	if err != nil {
		t.Fatal(err)
	}
	if len(corps) != 2 || corps[0] != (directory.Corp{ID: cfg.CorpID, App: "helpdesk", First: true}) ||
		corps[1] != (directory.Corp{ID: sim.DemoDealerCorpID, App: sim.DemoDealerApp}) {
		t.Fatalf("Corps = %+v", corps)
	}
	tc := &twoCorps{sim: s, mainID: cfg.CorpID}
	tokens := idtest.Tokens(s)
	for i, c := range corps {
		sy, err := directory.NewSyncer(dc, c, e.kv, wecom.NewClient(s.URL()), tokens, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sy.FullSync(ctx); err != nil {
			t.Fatalf("full sync of %s: %v", c.ID, err)
		}
		if i == 0 {
			tc.main = sy
		} else {
			tc.dealer = sy
		}
	}
	tc.store = directory.NewStore(e.kv, nil, directory.WithCorps(w.CorpIDs()...))
	if err := tc.store.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e.store = tc.store
	return tc, e
}

// Each corp's full sync fills its own directory: the same department id
// holds different members in each, a member of one corp is not found in the
// other, and the first corp's keys are those from before several corps.
func TestDirectoryPerCorp(t *testing.T) {
	c, e := startTwoCorps(t)
	ctx := context.Background()
	dealer := sim.DemoDealerCorpID
	for _, tc := range []struct {
		corp string
		dept int64
		want []string
	}{
		{"", 2, []string{"wangwu", "zhangsan"}},
		{c.mainID, 2, []string{"wangwu", "zhangsan"}},
		{dealer, 2, []string{"chenyi", "liuer"}},
		{dealer, 1, []string{"chenyi", "liuer", "zhousan"}},
	} {
		if got, err := c.store.DepartmentMembers(ctx, tc.corp, tc.dept, tc.dept == 1); err != nil || !slices.Equal(ids(got), tc.want) {
			t.Errorf("DepartmentMembers(%q, %d) = %v, %v; want %v", tc.corp, tc.dept, ids(got), err, tc.want)
		}
	}
	if u, err := c.store.User(ctx, dealer, "chenyi"); err != nil || u.EmployeeNo != "D001" || !slices.Equal(u.Tags, []int64{1}) {
		t.Fatalf("dealer's chenyi = %+v, %v", u, err)
	}
	if _, err := c.store.User(ctx, "", "chenyi"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("chenyi found in the first corp: %v", err)
	}
	if _, err := c.store.User(ctx, dealer, "zhangsan"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("zhangsan found in the dealer corp: %v", err)
	}
	if _, err := c.store.User(ctx, "wwnobody", "zhangsan"); !errors.Is(err, directory.ErrUnknownCorp) {
		t.Fatalf("unknown corp: %v", err)
	}
	if got, _, err := c.store.Expand(ctx, dealer, "2", "1"); err != nil || !slices.Equal(got, []string{"chenyi", "liuer"}) {
		t.Fatalf("Expand in the dealer corp = %v, %v", got, err)
	}
	if got, _ := c.store.TagMembers(ctx, "", 1); !slices.Equal(ids(got), []string{"wangwu", "zhangsan"}) {
		t.Fatalf("first corp's tag 1 = %v", ids(got))
	}
	for _, key := range []string{"user.emhhbmdzYW4", "dept.2", "meta", "corp." + dealer + ".user.Y2hlbnlp", "corp." + dealer + ".dept.2", "corp." + dealer + ".meta"} {
		if _, err := e.kv.Get(ctx, key); err != nil {
			t.Errorf("key %s: %v", key, err)
		}
	}
	// A full sync of one corp removes its own stale entries, never another's.
	_, _ = e.kv.Put(ctx, bus.DirUserKey("", "ghost"), []byte(`{"userid":"ghost"}`))
	_, _ = e.kv.Put(ctx, bus.DirUserKey(bus.DirPrefix(dealer), "ghost2"), []byte(`{"userid":"ghost2"}`))
	if st, err := c.dealer.FullSync(ctx); err != nil || st.Removed != 1 {
		t.Fatalf("dealer's full sync: %+v, %v", st, err)
	}
	if _, err := e.kv.Get(ctx, bus.DirUserKey("", "ghost")); err != nil {
		t.Fatalf("the dealer's sync removed the first corp's entry: %v", err)
	}
}

// A change_contact of the dealer corp (data.corp) is served by the dealer's
// syncer alone and changes only the dealer's directory.
func TestChangeContactPerCorp(t *testing.T) {
	c, e := startTwoCorps(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, sy := range []*directory.Syncer{c.main, c.dealer} {
		go func() { _ = sy.Run(ctx) }()
	}
	moved := sim.User{UserID: "liuer", Name: "刘二", Department: []int64{1, 3}, Position: "华南经理", CorpID: sim.DemoDealerCorpID}
	if _, err := c.sim.PutUser(ctx, "", moved); err != nil {
		t.Fatal(err)
	}
	h := directorysync.Handler(e.kv, nil)
	ev := &schemas.Event{ID: "ev-1", Data: schemas.EventData{Corp: sim.DemoDealerCorpID, App: sim.DemoDealerApp, MsgType: "event",
		Event: "change_contact", ChangeType: "update_user", Extra: map[string]string{"UserID": "liuer"}}}
	if _, err := h.Handle(ctx, ev); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		u, err := c.store.User(ctx, sim.DemoDealerCorpID, "liuer")
		if err == nil && u.Position == "华南经理" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dealer's liuer not refreshed: %+v %v", u, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got, _ := c.store.DepartmentMembers(ctx, sim.DemoDealerCorpID, 3, false); !slices.Equal(ids(got), []string{"liuer", "zhousan"}) {
		t.Fatalf("dealer's department 3 = %v", ids(got))
	}
	if got, _ := c.store.DepartmentMembers(ctx, "", 3, false); !slices.Equal(ids(got), []string{"lisi", "sunqi"}) {
		t.Fatalf("first corp's department 3 = %v", ids(got))
	}
	if _, err := c.store.User(ctx, "", "liuer"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("liuer in the first corp: %v", err)
	}
}

// The read API reads the key's default corp, or corp=; a corp the hub does
// not serve is a 400, one the key may not read a 403.
func TestHTTPAPIPerCorp(t *testing.T) {
	c, _ := startTwoCorps(t)
	dealer := sim.DemoDealerCorpID
	srv := httptest.NewServer(c.store.Handler(func(r *http.Request) directory.Access {
		switch r.Header.Get("Authorization") {
		case "Bearer all":
			return directory.Access{OK: true}
		case "Bearer dealer":
			return directory.Access{OK: true, Default: dealer, May: func(corp string) bool { return corp == dealer }}
		}
		return directory.Access{}
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name, path, key string
		want            int
	}{
		{"first corp by default", "/api/v1/directory/users/zhangsan", "all", 200},
		{"dealer's member not in the first corp", "/api/v1/directory/users/chenyi", "all", 404},
		{"corp=", "/api/v1/directory/users/chenyi?corp=" + dealer, "all", 200},
		{"first corp by id", "/api/v1/directory/users/zhangsan?corp=" + c.mainID, "all", 200},
		{"the key's corp by default", "/api/v1/directory/users/chenyi", "dealer", 200},
		{"the key's corp's department 2", "/api/v1/directory/departments/2/members", "dealer", 200},
		{"another corp refused", "/api/v1/directory/users/zhangsan?corp=" + c.mainID, "dealer", 403},
		{"unknown corp", "/api/v1/directory/users/zhangsan?corp=wwnobody", "all", 400},
		{"empty corp", "/api/v1/directory/users/zhangsan?corp=", "all", 400},
		{"no key", "/api/v1/directory/users/zhangsan", "", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
			if tc.key != "" {
				req.Header.Set("Authorization", "Bearer "+tc.key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("%s: %d, want %d", tc.path, resp.StatusCode, tc.want)
			}
		})
	}
}
