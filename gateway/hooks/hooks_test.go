package hooks_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/gateway/hooks"
	"github.com/wxhub/wxhub/schemas"
)

func loadExamples(t *testing.T) hooks.Config {
	t.Helper()
	b, err := os.ReadFile("testdata/hooks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Hooks yaml.Node }
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	cfg, err := hooks.Decode(&doc.Hooks)
	if err != nil {
		t.Fatal(err)
	}
	if ex := hooks.Examples(); len(ex) != 3 || ex[2].Name != "jira" {
		t.Fatalf("Examples() %v", ex)
	}
	return cfg
}

func hook(t *testing.T, cfg hooks.Config, name string) hooks.Hook {
	for _, h := range cfg {
		if h.Name == name {
			return h
		}
	}
	t.Fatalf("no hook %s", name)
	return hooks.Hook{}
}

func payload(t *testing.T, file string) []byte {
	b, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeBody(t *testing.T, m schemas.OutboundData) map[string]any {
	var b map[string]any
	if err := json.Unmarshal(m.Body, &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWorkedExamples maps the three example payloads with the example config.
func TestWorkedExamples(t *testing.T) {
	cfg := loadExamples(t)
	t.Run("gitlab pipeline failed", func(t *testing.T) {
		m, err := hooks.DryRun(hook(t, cfg, "gitlab-ci"), payload(t, "gitlab-pipeline.json"))
		if err != nil {
			t.Fatal(err)
		}
		b := decodeBody(t, m)
		content := b["markdown"].(map[string]any)["content"].(string)
		want := "**wxhub** 流水线 #31（main）<font color=\"warning\">失败</font>\n> 提交：router: continue after webhook rules\n> 用时：63 秒\n[查看流水线](https://gitlab.example.com/platform/wxhub/-/pipelines/31)"
		if m.App != "helpdesk" || m.Kind != schemas.KindMessage || m.Priority != "urgent" || m.DedupKey != "gitlab-pipeline-31-failed" ||
			b["touser"] != "zhangsan" || b["msgtype"] != "markdown" || content != want {
			t.Fatalf("message %+v\n%s\nwant content\n%s", m, content, want)
		}
		running := bytes.Replace(payload(t, "gitlab-pipeline.json"), []byte(`"failed"`), []byte(`"running"`), 1)
		if _, err := hooks.DryRun(hook(t, cfg, "gitlab-ci"), running); !errors.Is(err, hooks.ErrSkipped) {
			t.Fatalf("running pipeline: %v, want skipped", err)
		}
	})
	t.Run("alertmanager firing", func(t *testing.T) {
		m, err := hooks.DryRun(hook(t, cfg, "alertmanager"), payload(t, "alertmanager.json"))
		if err != nil {
			t.Fatal(err)
		}
		b := decodeBody(t, m)
		content := b["markdown"].(map[string]any)["content"].(string)
		want := "**告警 HighLatency**（2 条）\n> web-1：p99 延迟 2.3s\n> web-2：p99 延迟 2.1s\n[Alertmanager](http://alertmanager.example.com:9093)"
		if m.Priority != "urgent" || b["touser"] != "lisi" || b["toparty"] != "2" || content != want ||
			m.DedupKey != `{}:{alertname="HighLatency"}|firing|a1b2c3d4e5f6` {
			t.Fatalf("message %+v\n%s\nwant content\n%s", m, content, want)
		}
	})
	t.Run("jira issue updated", func(t *testing.T) {
		m, err := hooks.DryRun(hook(t, cfg, "jira"), payload(t, "jira-issue-updated.json"))
		if err != nil {
			t.Fatal(err)
		}
		b := decodeBody(t, m)
		card := b["textcard"].(map[string]any)
		if m.Priority != "urgent" || b["touser"] != "lisi" || b["msgtype"] != "textcard" || card["title"] != "OPS-77 打印机卡纸（三楼）" ||
			card["description"] != `<div class="highlight">Open → In Progress</div><div class="gray">王五 更新，优先级 High</div>` ||
			card["url"] != "https://jira.example.com/browse/OPS-77" || card["btntxt"] != "查看工单" || m.DedupKey != "jira-OPS-77-1764576000000" {
			t.Fatalf("message %+v %v", m, card)
		}
	})
}

type published struct {
	hook string
	msg  schemas.OutboundData
}

func server(t *testing.T, cfg hooks.Config, fail error) (*httptest.Server, func() []published) {
	var mu sync.Mutex
	var got []published
	h, err := hooks.New(cfg, func(_ context.Context, hook string, msg schemas.OutboundData) (string, error) {
		if fail != nil {
			return "", fail
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, published{hook, msg})
		return "m-" + hook, nil
	}, zaptest.NewLogger(t), hooks.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /api/v1/hooks/{name}", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, func() []published { mu.Lock(); defer mu.Unlock(); return append([]published(nil), got...) }
}

func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func TestHandlerAuth(t *testing.T) {
	cfg := loadExamples(t)
	jira, gitlab, am := payload(t, "jira-issue-updated.json"), payload(t, "gitlab-pipeline.json"), payload(t, "alertmanager.json")
	tests := []struct {
		name, hook string
		body       []byte
		header     map[string]string
		want       int
	}{
		{"hmac ok", "jira", jira, map[string]string{"X-Hub-Signature": sign("demo-jira-secret-00001", jira)}, 202},
		{"hmac bare hex ok", "jira", jira, map[string]string{"X-Hub-Signature": strings.TrimPrefix(sign("demo-jira-secret-00001", jira), "sha256=")}, 202},
		{"hmac wrong secret", "jira", jira, map[string]string{"X-Hub-Signature": sign("wrong-secret-000000000", jira)}, 401},
		{"hmac over another body", "jira", jira, map[string]string{"X-Hub-Signature": sign("demo-jira-secret-00001", am)}, 401},
		{"hmac missing", "jira", jira, nil, 401},
		{"token ok", "gitlab-ci", gitlab, map[string]string{"X-Gitlab-Token": "demo-gitlab-token-0001"}, 202},
		{"token wrong", "gitlab-ci", gitlab, map[string]string{"X-Gitlab-Token": "demo-gitlab-token-0002"}, 401},
		{"bearer ok", "alertmanager", am, map[string]string{"Authorization": "Bearer demo-alertmanager-token-0001"}, 202},
		{"bearer wrong", "alertmanager", am, map[string]string{"Authorization": "Bearer nope"}, 401},
		{"bearer of another hook", "alertmanager", am, map[string]string{"Authorization": "Bearer demo-gitlab-token-0001"}, 401},
		{"unknown hook", "nope", am, nil, 404},
		{"not JSON", "gitlab-ci", []byte("<xml/>"), map[string]string{"X-Gitlab-Token": "demo-gitlab-token-0001"}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, got := server(t, cfg, nil)
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/hooks/"+tt.hook, bytes.NewReader(tt.body))
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var answer map[string]string
			json.NewDecoder(resp.Body).Decode(&answer)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d %v, want %d", resp.StatusCode, answer, tt.want)
			}
			p := got()
			if tt.want != 202 {
				if len(p) != 0 {
					t.Fatalf("refused request queued %v", p)
				}
				return
			}
			if len(p) != 1 || p[0].hook != tt.hook || answer["id"] != "m-"+tt.hook || answer["status"] != "queued" {
				t.Fatalf("published %v, answer %v", p, answer)
			}
		})
	}
}

func TestHandlerOutcomes(t *testing.T) {
	cfg := loadExamples(t)
	post := func(srv *httptest.Server, body []byte) (int, map[string]string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/hooks/gitlab-ci", bytes.NewReader(body))
		req.Header.Set("X-Gitlab-Token", "demo-gitlab-token-0001")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a map[string]string
		json.NewDecoder(resp.Body).Decode(&a)
		return resp.StatusCode, a
	}
	srv, got := server(t, cfg, nil)
	running := bytes.Replace(payload(t, "gitlab-pipeline.json"), []byte(`"failed"`), []byte(`"running"`), 1)
	if st, a := post(srv, running); st != 200 || a["status"] != "skipped" || len(got()) != 0 {
		t.Fatalf("skipped: %d %v %v", st, a, got())
	}
	noUser := bytes.Replace(payload(t, "gitlab-pipeline.json"), []byte(`"username": "zhangsan"`), []byte(`"username": ""`), 1)
	if st, a := post(srv, noUser); st != 400 || a["field"] != "to" || len(got()) != 0 {
		t.Fatalf("no recipient: %d %v", st, a)
	}
	down, _ := server(t, cfg, errors.New("nats: no responders"))
	if st, a := post(down, payload(t, "gitlab-pipeline.json")); st != 503 || strings.Contains(a["error"], "nats") {
		t.Fatalf("queue down: %d %v", st, a)
	}
}

func TestConfigErrors(t *testing.T) {
	base := "- name: a\n  secret: sixteen-chars-0001\n  app: helpdesk\n  to: {users: u}\n  content: x\n"
	tests := []struct{ name, given, wantErr string }{
		{"valid", base, ""},
		{"no secret", "- name: a\n  app: h\n  to: {users: u}\n  content: x\n", "[0].secret: is required, at least 16 characters"},
		{"bad name", strings.Replace(base, "name: a", "name: 'a b'", 1), "[0].name: \"a b\" must be"},
		{"twice", base + base, "[1].name: \"a\" is used twice (line 6)"},
		{"no recipients", strings.Replace(base, "to: {users: u}", "to: {}", 1), "[0].to: needs users, parties, tags or chat (line 4)"},
		{"chat and users", strings.Replace(base, "to: {users: u}", "to: {users: u, chat: c}", 1), "[0].to.chat: a group chat excludes"},
		{"bad template", strings.Replace(base, "content: x", "content: '{{ .x'", 1), "[0].content: template: content:1: unclosed action (line 5)"},
		{"msgtype", base + "  msgtype: news\n", "[0].msgtype: \"news\" is not text, markdown or textcard (line 6)"},
		{"token without header", base + "  auth: token\n", "[0].header: is required for auth token"},
		{"unknown key", base + "  priorty: x\n", "[0].priorty: unknown key (line 6)"},
		{"textcard fields", strings.Replace(base, "content: x", "msgtype: textcard", 1), "[0].msgtype: textcard needs title, description and url (line 5)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n yaml.Node
			if err := yaml.Unmarshal([]byte(tt.given), &n); err != nil {
				t.Fatal(err)
			}
			_, err := hooks.Decode(&n)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want %q", err, tt.wantErr)
			}
		})
	}
	cfg := loadExamples(t)
	if err := cfg.CheckApps(func(a string) bool { return a == "other" }); err == nil || err.Error() != `[0].app: no app named "helpdesk"` {
		t.Fatalf("CheckApps: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, err := hooks.New(loadExamples(t), func(context.Context, string, schemas.OutboundData) (string, error) { return "m1", nil },
		zaptest.NewLogger(t), hooks.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ path, token string }{
		{"/api/v1/hooks/gitlab-ci", "demo-gitlab-token-0001"}, {"/api/v1/hooks/gitlab-ci", "wrong"}, {"/api/v1/hooks/x-attacker-1", ""},
	} {
		r := httptest.NewRequest(http.MethodPost, tt.path, bytes.NewReader(payload(t, "gitlab-pipeline.json")))
		r.Header.Set("X-Gitlab-Token", tt.token)
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			got[mf.GetName()+" "+l["hook"]+" "+l["result"]] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"wxhub_hook_requests_total gitlab-ci 401": 1, "wxhub_hook_requests_total gitlab-ci queued": 1, "wxhub_hook_requests_total unknown 404": 1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("metrics %v, want %v", got, want)
	}
	if hk, ok := loadExamples(t).Hook("jira"); !ok || hk.Auth != "hmac" {
		t.Fatalf("Hook(jira) %v %v", hk, ok)
	}
}
