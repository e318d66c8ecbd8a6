package directory_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/connectors/directorysync"
	"github.com/wxhub/wxhub/directory"
	"github.com/wxhub/wxhub/internal/idtest"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom"
	"github.com/wxhub/wxhub/wecom/sim"
)

type env struct {
	t     *testing.T
	sim   *sim.Server
	kv    jetstream.KeyValue
	sync  *directory.Syncer
	store *directory.Store
	b     *bus.Bus
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e := &env{t: t, sim: idtest.Sim(t), b: bustest.Open(t, bus.Config{})}
	var err error
	if e.kv, err = e.b.KV(ctx, bus.BucketDirectory); err != nil {
		t.Fatal(err)
	}
	tokens := idtest.Tokens(e.sim)
	e.sync, err = directory.NewSyncer(directory.Config{App: "helpdesk"}, directory.Corp{ID: e.sim.Config().CorpID, App: "helpdesk", First: true}, e.kv, wecom.NewClient(e.sim.URL()),
		func(ctx context.Context, app string, fresh bool) (string, error) { return tokens(ctx, app, fresh) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.sync.FullSync(ctx); err != nil {
		t.Fatal(err)
	}
	e.store = directory.NewStore(e.kv, nil)
	if err := e.store.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return e
}

func ids(us []schemas.DirUser) []string {
	out := []string{}
	for _, u := range us {
		out = append(out, u.UserID)
	}
	return out
}

func TestFullSync(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u, err := e.store.User(ctx, "", "zhangsan")
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "张三" || !slices.Equal(u.Departments, []int64{1, 2}) || !slices.Equal(u.IsLeaderInDept, []int{0, 1}) ||
		u.Position != "销售经理" || u.EmployeeNo != "A001" || !slices.Equal(u.Tags, []int64{1}) || u.MainDepartment != 1 {
		t.Fatalf("zhangsan = %+v", u)
	}
	d, err := e.store.Department(ctx, "", 2)
	if err != nil || d.Name != "销售部" || d.ParentID != 1 || !slices.Equal(d.Leaders, []string{"zhangsan"}) {
		t.Fatalf("department 2 = %+v, %v", d, err)
	}
	for _, tc := range []struct {
		name      string
		dept      int64
		recursive bool
		want      []string
	}{
		{"sales", 2, false, []string{"wangwu", "zhangsan"}},
		{"finance", 3, true, []string{"lisi", "sunqi"}},
		{"root direct", 1, false, []string{"lisi", "sunqi", "wangwu", "zhangsan", "zhaoliu", "zhouba"}},
	} {
		got, err := e.store.DepartmentMembers(ctx, "", tc.dept, tc.recursive)
		if err != nil || !slices.Equal(ids(got), tc.want) {
			t.Errorf("%s: DepartmentMembers(%d, %v) = %v, %v; want %v", tc.name, tc.dept, tc.recursive, ids(got), err, tc.want)
		}
	}
	if got, err := e.store.TagMembers(ctx, "", 1); err != nil || !slices.Equal(ids(got), []string{"wangwu", "zhangsan"}) {
		t.Fatalf("TagMembers(1) = %v, %v", ids(got), err)
	}
	if _, err := e.store.User(ctx, "", "nobody"); err == nil {
		t.Fatal("unknown user found")
	}
	if c, err := e.store.Claims(ctx, "", "lisi"); err != nil || c["name"] != "李四" || c["employee_no"] != "A002" || c["position"] != "财务" {
		t.Fatalf("Claims(lisi) = %v, %v", c, err)
	}
}

// TestDepartmentSendExpanded: a send to departments and tags becomes the
// member list the push path limits one by one.
func TestDepartmentSendExpanded(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name           string
		party, tag     string
		want, wantMiss []string
	}{
		{"one department", "2", "", []string{"wangwu", "zhangsan"}, nil},
		{"two departments", "3|4", "", []string{"lisi", "sunqi", "zhaoliu", "zhouba"}, nil},
		{"department and overlapping tag", "2", "1", []string{"wangwu", "zhangsan"}, nil},
		{"root reaches everyone below", "1", "", []string{"lisi", "sunqi", "wangwu", "zhangsan", "zhaoliu", "zhouba"}, nil},
		{"unknown ones reported", "2|99", "7|x", []string{"wangwu", "zhangsan"}, []string{"party:99", "tag:7", "tag:x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, miss, err := e.store.Expand(context.Background(), "", tc.party, tc.tag)
			slices.Sort(got)
			if err != nil || !slices.Equal(got, tc.want) || !slices.Equal(miss, tc.wantMiss) {
				t.Fatalf("Expand(%q, %q) = %v, %v, %v; want %v, %v", tc.party, tc.tag, got, miss, err, tc.want, tc.wantMiss)
			}
		})
	}
}

// callbackReceiver stands in for the gateway and router: it decrypts the
// simulator's callbacks and hands change_contact events to the connector.
func callbackReceiver(t *testing.T, s *sim.Server, h func(*schemas.Event)) string {
	t.Helper()
	app := s.Config().Apps[0]
	cr, err := wecom.NewCrypter(app.Token, app.EncodingAESKey, s.Config().CorpID)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		body, _ := io.ReadAll(r.Body)
		plain, err := cr.Decrypt(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		d, err := wecom.ParseInbound(plain)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		d.Channel, d.App = schemas.ChannelWeCom, app.Name
		h(&schemas.Event{ID: wecom.DedupKey(d, plain), Data: d})
		w.Write([]byte("success"))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestChangeContactUpdate: a member moved and promoted in WeCom, one added
// and one removed; the simulator plays change_contact, the directorysync
// connector writes refresh requests, the running syncer serves them, and every
// store replica sees the change.
func TestChangeContactUpdate(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	meta, err := e.kv.Get(ctx, bus.DirMetaKey(""))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.sync.Run(ctx) }()
	// Let Run's own first full sync finish, so that what follows is the
	// refresh path's doing.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if m, err := e.kv.Get(ctx, bus.DirMetaKey("")); err == nil && m.Revision() > meta.Revision() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not sync")
		}
	}
	h := directorysync.Handler(e.kv, nil)
	e.sim.SetGatewayURL(callbackReceiver(t, e.sim, func(ev *schemas.Event) {
		if _, err := h.Handle(context.Background(), ev); err != nil {
			t.Errorf("connector: %v", err)
		}
	}))
	// The callback URL is derived per app from GatewayURL + /wecom/{app}/callback.
	wangwu := sim.User{UserID: "wangwu", Name: "王五", Department: []int64{1, 3}, IsLeaderInDept: []int{0, 0}, Position: "财务经理", Tags: []int64{1}, ExtAttr: map[string]string{"工号": "A003"}}
	if _, err := e.sim.PutUser(ctx, "helpdesk", wangwu); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.PutUser(ctx, "helpdesk", sim.User{UserID: "qianjiu", Name: "钱九", Department: []int64{2}, Position: "销售"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.DeleteUser(ctx, "helpdesk", "zhouba"); err != nil {
		t.Fatal(err)
	}
	// A second store replica, started after the changes, agrees.
	other := directory.NewStore(e.kv, nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		u, err := e.store.User(ctx, "", "wangwu")
		sales, _ := e.store.DepartmentMembers(ctx, "", 2, false)
		_, goneErr := e.store.User(ctx, "", "zhouba")
		if err == nil && u.Position == "财务经理" && u.EmployeeNo == "A003" && slices.Equal(u.Tags, []int64{1}) &&
			slices.Equal(ids(sales), []string{"qianjiu", "zhangsan"}) && goneErr != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("directory not updated: wangwu %+v %v; sales %v; zhouba err %v", u, err, ids(sales), goneErr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := other.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if fin, _ := other.DepartmentMembers(ctx, "", 3, false); !slices.Equal(ids(fin), []string{"lisi", "sunqi", "wangwu"}) {
		t.Fatalf("second replica: finance = %v", ids(fin))
	}
	// Served requests are removed from the bucket.
	deadline = time.Now().Add(5 * time.Second)
	for {
		l, err := e.kv.ListKeysFiltered(ctx, "refresh.>")
		n := 0
		if err == nil {
			for range l.Keys() {
				n++
			}
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d refresh requests left", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHTTPAPI(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(e.store.Handler(func(r *http.Request) directory.Access {
		return directory.Access{OK: r.Header.Get("Authorization") == "Bearer k"}
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name, path, key string
		want            int
		wantIDs         []string
	}{
		{"user", "/api/v1/directory/users/lisi", "k", 200, nil},
		{"no key", "/api/v1/directory/users/lisi", "", 401, nil},
		{"wrong key", "/api/v1/directory/users/lisi", "x", 401, nil},
		{"unknown user", "/api/v1/directory/users/nobody", "k", 404, nil},
		{"department", "/api/v1/directory/departments/2/members", "k", 200, []string{"wangwu", "zhangsan"}},
		{"department recursive", "/api/v1/directory/departments/1/members?recursive=1", "k", 200, []string{"lisi", "sunqi", "wangwu", "zhangsan", "zhaoliu", "zhouba"}},
		{"bad recursive", "/api/v1/directory/departments/1/members?recursive=yes", "k", 400, nil},
		{"bad department", "/api/v1/directory/departments/x/members", "k", 400, nil},
		{"unknown department", "/api/v1/directory/departments/99/members", "k", 404, nil},
		{"tag", "/api/v1/directory/tags/1/members", "k", 200, []string{"wangwu", "zhangsan"}},
		{"unknown tag", "/api/v1/directory/tags/9/members", "k", 404, nil},
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
			defer resp.Body.Close()
			var body struct {
				UserID  string            `json:"userid"`
				Members []schemas.DirUser `json:"members"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tc.want {
				t.Fatalf("%s: %d, want %d", tc.path, resp.StatusCode, tc.want)
			}
			if tc.name == "user" && body.UserID != "lisi" {
				t.Fatalf("user answer %+v", body)
			}
			if tc.wantIDs != nil && !slices.Equal(ids(body.Members), tc.wantIDs) {
				t.Fatalf("members %v, want %v", ids(body.Members), tc.wantIDs)
			}
		})
	}
}
