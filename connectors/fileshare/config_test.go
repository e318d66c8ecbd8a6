package fileshare_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/connectors/fileshare"
	"github.com/wxhub/wxhub/schemas"
)

func node(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	return n.Content[0]
}

func TestBuiltinConfigure(t *testing.T) {
	tests := []struct {
		name    string
		given   string
		wantErr string
	}{
		{name: "smallest", given: "sources: [{name: s, root: /srv/share, everyone: true}]"},
		{name: "webdav", given: "sources: [{name: s, kind: webdav, url: 'http://dav', users: [zhangsan]}]"},
		{name: "no sources", given: "list_size: 3", wantErr: "sources: at least one"},
		{name: "nobody may see it", given: "sources: [{name: s, root: /x}]", wantErr: "sources[0]: say who may see it"},
		{name: "bad kind", given: "sources: [{name: s, kind: ftp, root: /x, everyone: true}]", wantErr: "sources[0].kind"},
		{name: "twice", given: "sources: [{name: s, root: /x, everyone: true}, {name: s, root: /y, everyone: true}]", wantErr: "sources[1].name"},
		{name: "too large", given: "max_file_size: 30000000\nsources: [{name: s, root: /x, everyone: true}]", wantErr: "max_file_size"},
		{name: "bad pattern", given: "pattern: '('\nsources: [{name: s, root: /x, everyone: true}]", wantErr: "pattern:"},
		{name: "bad transcriber", given: "transcriber: {base_url: ftp://x}\nsources: [{name: s, root: /x, everyone: true}]", wantErr: "transcriber: "},
		{name: "unknown key", given: "sourcez: []", wantErr: "sourcez"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inst, err := fileshare.Builtin.Configure("files", node(t, tc.given))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(inst.Rules) != 1 || inst.Rules[0].To[0] != "files" || len(inst.Fallback) != 3 {
				t.Fatalf("rules %+v fallback %+v", inst.Rules, inst.Fallback)
			}
		})
	}
}

// The default rules: the search pattern, the keywords, a list's number, voice.
func TestDefaultRulesMatch(t *testing.T) {
	inst, err := fileshare.Builtin.Configure("fileshare", node(t, "sources: [{name: s, root: /x, everyone: true}]"))
	if err != nil {
		t.Fatal(err)
	}
	rules := append(inst.Rules, inst.Fallback...)
	matches := func(msgtype, text string) bool {
		for _, r := range rules {
			m := r.Match
			if len(m.MsgType) > 0 && m.MsgType[0] != msgtype {
				continue
			}
			if m.Content != "" && !regexp.MustCompile(m.Content).MatchString(text) {
				continue
			}
			if len(m.Keywords) > 0 && !containsAny(text, m.Keywords) {
				continue
			}
			return true
		}
		return false
	}
	for _, tc := range []struct {
		msgtype, text string
		want          bool
	}{
		{"text", "找 销售周报", true}, {"text", "查找合同", true}, {"text", "销售周报", true}, {"text", "合同模板", true},
		{"text", "2", true}, {"text", "订单 1001", false}, {"text", "12", false}, {"voice", "", true},
	} {
		if got := matches(tc.msgtype, tc.text); got != tc.want {
			t.Errorf("%s %q routed here = %v, want %v", tc.msgtype, tc.text, got, tc.want)
		}
	}
}

func containsAny(s string, subs []string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

// A link stops working when it expires, and when its user loses access.
func TestLinkExpiresAndFollowsAccess(t *testing.T) {
	root := t.TempDir()
	if err := fileshare.WriteSamples(root, now); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	clock := now
	cfg := demoConfig(root, "")
	cfg.IndexPath = filepath.Join(t.TempDir(), "i.json.gz")
	dir := fileshare.StaticDirectory{"zhangsan": {Departments: []int{2}}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c, err := fileshare.New(ctx, "links", cfg, fileshare.Deps{Bus: bustest.Open(t, bus.Config{}), Logger: zap.NewNop(), Directory: dir,
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }})
	if err != nil {
		t.Fatal(err)
	}
	<-c.Scanned()
	replies, err := c.Handle(ctx, event("l1", "zhangsan", schemas.EventData{MsgType: "text", Content: "产品宣传片"}))
	if err != nil || len(replies) != 1 {
		t.Fatalf("Handle = %v, %v", replies, err)
	}
	body := replies[0].Body.(map[string]any)["text"].(map[string]string)["content"]
	i := strings.Index(body, fileshare.LinkPath)
	if i < 0 {
		t.Fatalf("no link in %q", body)
	}
	path := strings.Fields(body[i:])[0]
	srv := httptest.NewServer(fileshare.Links)
	t.Cleanup(srv.Close)
	status := func() int {
		resp, err := http.Head(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := status(); s != http.StatusOK {
		t.Fatalf("fresh link = %d", s)
	}
	dir["zhangsan"] = fileshare.Membership{Departments: []int{4}} // moved to another department
	if s := status(); s != http.StatusNotFound {
		t.Fatalf("link after losing access = %d", s)
	}
	dir["zhangsan"] = fileshare.Membership{Departments: []int{2}}
	mu.Lock()
	clock = clock.Add(cfg.Link.TTL)
	mu.Unlock()
	if s := status(); s != http.StatusNotFound {
		t.Fatalf("expired link = %d", s)
	}
}

// The demo's section is a valid configuration.
func TestDemoSectionConfigures(t *testing.T) {
	n := node(t, fileshare.DemoSection("/tmp/wxhub-demo/files", "http://127.0.0.1:8080", "http://127.0.0.1:8081"))
	if len(n.Content) != 2 || n.Content[0].Value != "fileshare" {
		t.Fatalf("section %v", n.Content)
	}
	if _, err := fileshare.Builtin.Configure(fileshare.Name, n.Content[1]); err != nil {
		t.Fatal(err)
	}
}
