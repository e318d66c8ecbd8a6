package fileshare_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/connectors/fileshare"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/sender"
	"github.com/wxhub/wxhub/wecom"
	"github.com/wxhub/wxhub/wecom/sim"
)

// now is the tests' clock: a Wednesday; the sample weekly reports are dated
// the Fridays of the four weeks before.
var now = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

// world is a hub in miniature: the bus, the WeCom simulator, the real sender
// against it, and the file share connector run by the SDK runner over the
// sample shares.
type world struct {
	b     *bus.Bus
	sim   *sim.Server
	c     *fileshare.Connector
	root  string
	audit *observer.ObservedLogs
	seq   atomic.Int64
}

type worldOpts struct {
	cfg      func(*fileshare.Config)
	noSender bool
	hubCorp  string // Deps.Corp: the hub's first corp
}

func demoConfig(root, simURL string) fileshare.Config {
	return fileshare.Config{
		IndexPath: filepath.Join(root, "index.json.gz"),
		Sources: []fileshare.SourceConfig{
			{Name: "公司共享", Root: filepath.Join(root, fileshare.SampleCompany), Everyone: true},
			{Name: "销售部", Root: filepath.Join(root, fileshare.SampleSales), Departments: []int{2}},
			{Name: "财务部", Root: filepath.Join(root, fileshare.SampleFinance), Departments: []int{3}},
		},
		Directory: fileshare.StaticDirectory{
			"zhangsan": {Departments: []int{1, 2}, Tags: []int{1}},
			"lisi":     {Departments: []int{1, 3}},
			"wangwu":   {Departments: []int{1, 2}},
			"zhaoliu":  {Departments: []int{1, 2}},
		},
		Link: fileshare.LinkConfig{BaseURL: "http://hub.example", Secret: "s3cret", TTL: time.Hour},
	}
}

func startSim(t *testing.T) *sim.Server {
	t.Helper()
	cfg := sim.DemoConfig()
	cfg.GatewayURL = ""
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func startSender(t *testing.T, b *bus.Bus, s *sim.Server) {
	t.Helper()
	app := s.Config().Apps[0]
	snd, err := sender.New(sender.Config{CorpID: s.Config().CorpID,
		Apps:  []sender.App{{Name: app.Name, AgentID: app.AgentID, Secret: app.Secret}},
		Retry: sender.Retry{Base: 100 * time.Millisecond, Max: time.Second, MaxAttempts: 4},
	}, b, wecom.NewClient(s.URL()), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- snd.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func newWorld(t *testing.T, o worldOpts) *world {
	t.Helper()
	w := &world{b: bustest.Open(t, bus.Config{Partitions: 2}), sim: startSim(t), root: t.TempDir()}
	if err := fileshare.WriteSamples(w.root, now); err != nil {
		t.Fatal(err)
	}
	if !o.noSender {
		startSender(t, w.b, w.sim)
	}
	cfg := demoConfig(w.root, w.sim.URL())
	cfg.Transcriber.BaseURL = w.sim.URL()
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	w.c = startConnector(t, w.b, cfg, &w.audit, o.hubCorp)
	return w
}

// startConnector runs a connector named fileshare on b until the test ends
// and waits for its first scan.
func startConnector(t *testing.T, b *bus.Bus, cfg fileshare.Config, audit **observer.ObservedLogs, hubCorp string) *fileshare.Connector {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	if audit != nil {
		*audit = logs
	}
	ctx, cancel := context.WithCancel(context.Background())
	c, err := fileshare.New(ctx, fileshare.Name, cfg, fileshare.Deps{Bus: b, Logger: zap.New(core), Now: func() time.Time { return now }, Corp: hubCorp})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	select {
	case <-c.Scanned():
	case <-time.After(20 * time.Second):
		t.Fatal("first scan did not end")
	}
	done := make(chan error, 1)
	go func() {
		done <- connectors.Run(ctx, b, connectors.Options{Name: fileshare.Name, Partitions: 2, PollWait: 100 * time.Millisecond,
			Backoff: connectors.ConstantBackoff(100 * time.Millisecond), Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))}, c)
	}()
	t.Cleanup(func() {
		cancel()
		// A test that ends at once stops the runner while it declares its consumers.
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
		c.Close() // the last index save, before the test's directories go
	})
	return c
}

func event(id, user string, d schemas.EventData) *schemas.Event {
	if d.Channel == "" {
		d.Channel = schemas.ChannelWeCom
	}
	if d.App == "" {
		d.App = "helpdesk"
	}
	d.User = user
	return &schemas.Event{SpecVersion: schemas.SpecVersion, ID: id, Source: d.Channel + "/" + d.App,
		Type: "wxhub.in." + d.MsgType, Time: time.Now(), DataContentType: "application/json", Data: d}
}

// say routes an event and returns what the simulator received for the user
// in answer (the first message after the ones before).
func (w *world) say(t *testing.T, user string, d schemas.EventData) sim.SentMessage {
	t.Helper()
	before := len(w.sim.SentTo(user))
	ev := event(fmt.Sprintf("ev-%d", w.seq.Add(1)), user, d)
	if _, err := w.b.PublishRoute(context.Background(), fileshare.Name, 2, ev); err != nil {
		t.Fatal(err)
	}
	var got []sim.SentMessage
	eventually(t, "an answer to "+user, func() bool { got = w.sim.SentTo(user); return len(got) > before })
	return got[before]
}

func (w *world) text(t *testing.T, user, text string) sim.SentMessage {
	t.Helper()
	return w.say(t, user, schemas.EventData{MsgType: "text", Content: text})
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fileName is the name of the uploaded file a file message carries.
func (w *world) fileName(t *testing.T, m sim.SentMessage) string {
	t.Helper()
	if m.MsgType != "file" {
		t.Fatalf("got a %s message (%q), want a file", m.MsgType, m.Content)
	}
	var body struct {
		File struct {
			MediaID string `json:"media_id"`
		} `json:"file"`
	}
	_ = json.Unmarshal(m.Body, &body)
	md, ok := w.sim.MediaByID(body.File.MediaID)
	if !ok || !md.Uploaded {
		t.Fatalf("file message with media %q the simulator has no upload of", body.File.MediaID)
	}
	return md.Filename
}

func TestTextQueryDeliversFile(t *testing.T) {
	w := newWorld(t, worldOpts{})
	tests := []struct {
		name, user, given, want string
	}{
		{name: "exact name", user: "zhangsan", given: "合同模板", want: "合同模板.docx"},
		{name: "command word", user: "zhangsan", given: "找 员工手册", want: "员工手册2026.pdf"},
		{name: "newest of a series", user: "zhangsan", given: "销售周报", want: "销售周报-第48周.xlsx"},
		// WeCom drops a message identical to one it delivered in the
		// duplicate-check interval (the sender asks for the check), so the
		// same file goes to another user each time.
		{name: "last week's", user: "wangwu", given: "上周的销售周报", want: "销售周报-第48周.xlsx"},
		{name: "pinyin initials", user: "zhaoliu", given: "xszb", want: "销售周报-第48周.xlsx"},
		{name: "pinyin full", user: "wangwu", given: "hetongmuban", want: "合同模板.docx"},
		{name: "department share", user: "lisi", given: "年度预算", want: "2026年度预算.xlsx"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := w.fileName(t, w.text(t, tc.user, tc.given)); got != tc.want {
				t.Fatalf("%s got %q, want %q", tc.given, got, tc.want)
			}
		})
	}
	// Every delivery is in the audit log: who, which file, how; no content.
	entries := w.audit.FilterMessage("fileshare delivery").FilterField(zap.String("via", "file")).All()
	if len(entries) != len(tests) {
		t.Fatalf("%d audit entries, want %d", len(entries), len(tests))
	}
	f := entries[len(entries)-1].ContextMap()
	if f["user"] != "lisi" || f["source"] != "财务部" || f["path"] != "2026年度预算.xlsx" {
		t.Fatalf("audit entry %v", f)
	}
}

func TestSameFileUploadedOnce(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.fileName(t, w.text(t, "zhangsan", "合同模板"))
	w.fileName(t, w.text(t, "lisi", "合同模板"))
	if n := len(w.sim.Uploads()); n != 1 {
		t.Fatalf("%d uploads for one file sent twice, want 1", n)
	}
}

func TestAmbiguousListThenNumber(t *testing.T) {
	w := newWorld(t, worldOpts{})
	list := w.text(t, "zhangsan", "合同")
	if list.MsgType != "text" || !strings.Contains(list.Content, "1. 合同模板.docx") || !strings.Contains(list.Content, "2. 采购合同模板-华东.docx") {
		t.Fatalf("list = %q", list.Content)
	}
	if got := w.fileName(t, w.text(t, "zhangsan", "2")); got != "采购合同模板-华东.docx" {
		t.Fatalf("choice 2 = %q", got)
	}
	// The list is used up; another user's number has no list either.
	for _, u := range []string{"zhangsan", "lisi"} {
		if m := w.text(t, u, "1"); m.MsgType != "text" || !strings.Contains(m.Content, "没有待选择的文件列表") {
			t.Fatalf("%s: number without a list = %s %q", u, m.MsgType, m.Content)
		}
	}
}

// A user outside a share's departments gets the same answer as for a file
// that does not exist, with no hint: not even in the suggestions.
func TestUnauthorisedUserGetsNoHint(t *testing.T) {
	w := newWorld(t, worldOpts{})
	denied := w.text(t, "zhangsan", "工资汇总")
	missing := w.text(t, "zhangsan", "工资单明细")
	for _, m := range []sim.SentMessage{denied, missing} {
		if m.MsgType != "text" || !strings.HasPrefix(m.Content, "没有找到") || strings.Contains(m.Content, "工资汇总-11月") {
			t.Fatalf("answer %s %q", m.MsgType, m.Content)
		}
	}
	if strings.ReplaceAll(denied.Content, "工资汇总", "X") != strings.ReplaceAll(missing.Content, "工资单明细", "X") {
		t.Fatalf("denied %q and missing %q differ beyond the query", denied.Content, missing.Content)
	}
	for _, u := range w.sim.Uploads() {
		if strings.Contains(u.Filename, "工资") {
			t.Fatalf("uploaded %s", u.Filename)
		}
	}
	// The finance member gets it.
	if got := w.fileName(t, w.text(t, "lisi", "工资汇总")); got != "工资汇总-11月.xlsx" {
		t.Fatalf("lisi got %q", got)
	}
}

// User and department ids are per corp: a source serves the members of its
// own corp only (default the hub's first), so a dealer corp's "lisi" gets
// nothing of the first corp's finance share, and the first corp's lisi
// nothing of a share of the dealer corp.
func TestSourcesServeTheirOwnCorp(t *testing.T) {
	const first, dealer = "wwfirst0000000001", "wwdealer00000001"
	w := newWorld(t, worldOpts{hubCorp: first, cfg: func(c *fileshare.Config) {
		finance := c.Sources[slices.IndexFunc(c.Sources, func(s fileshare.SourceConfig) bool { return s.Name == "财务部" })]
		c.Sources = append(c.Sources, fileshare.SourceConfig{Name: "经销商财务", Root: finance.Root, Users: []string{"lisi"}, Corp: dealer})
	}})
	deliveredFrom := func(corp string) string {
		t.Helper()
		before := w.audit.FilterMessage("fileshare delivery").Len()
		m := w.say(t, "lisi", schemas.EventData{MsgType: "text", Content: "工资汇总", Corp: corp})
		if m.MsgType != "file" {
			t.Fatalf("lisi of %q got %s %q, want the file", corp, m.MsgType, m.Content)
		}
		all := w.audit.FilterMessage("fileshare delivery").All()
		if len(all) != before+1 {
			t.Fatalf("%d deliveries audited, want %d", len(all), before+1)
		}
		return all[len(all)-1].ContextMap()["source"].(string)
	}
	if got := deliveredFrom(""); got != "财务部" {
		t.Fatalf("the first corp's lisi (no data.corp) got the file from %q", got)
	}
	if got := deliveredFrom(first); got != "财务部" {
		t.Fatalf("the first corp's lisi got the file from %q", got)
	}
	if got := deliveredFrom(dealer); got != "经销商财务" {
		t.Fatalf("the dealer's lisi got the file from %q", got)
	}
	// The dealer's zhangsan is not the first corp's zhangsan of sales.
	m := w.say(t, "zhangsan", schemas.EventData{MsgType: "text", Content: "客户名单", Corp: dealer})
	if m.MsgType != "text" || !strings.HasPrefix(m.Content, "没有找到") {
		t.Fatalf("the dealer's zhangsan got %s %q", m.MsgType, m.Content)
	}
}

func TestNoMatchSuggestsCloseNames(t *testing.T) {
	w := newWorld(t, worldOpts{})
	m := w.text(t, "zhangsan", "员工守则")
	if !strings.Contains(m.Content, "没有找到「员工守则」") || !strings.Contains(m.Content, "员工手册2026.pdf") {
		t.Fatalf("answer %q", m.Content)
	}
}

func TestWeComVoice(t *testing.T) {
	w := newWorld(t, worldOpts{})
	id := w.sim.AddMedia("helpdesk", "voice", "voice.amr", []byte("#!AMR\n合同模板"))
	m := w.say(t, "zhangsan", schemas.EventData{MsgType: "voice", MediaID: id, Format: "amr"})
	if got := w.fileName(t, m); got != "合同模板.docx" {
		t.Fatalf("voice got %q", got)
	}
	if n := w.sim.Stats().Calls["audio/transcriptions"]; n != 1 {
		t.Fatalf("transcriptions = %d", n)
	}
}

func TestVoiceWithoutTranscriber(t *testing.T) {
	w := newWorld(t, worldOpts{cfg: func(c *fileshare.Config) { c.Transcriber.BaseURL = "" }})
	id := w.sim.AddMedia("helpdesk", "voice", "voice.amr", []byte("#!AMR\n合同模板"))
	m := w.say(t, "zhangsan", schemas.EventData{MsgType: "voice", MediaID: id, Format: "amr"})
	if m.MsgType != "text" || !strings.Contains(m.Content, "语音查找文件未开启") {
		t.Fatalf("answer %s %q", m.MsgType, m.Content)
	}
}

// An Official Account voice carries WeChat's Recognition: no fetch, no
// transcriber. An Official Account sends files through its own media API,
// which the sender does not resolve, so the customer gets a link (checked at
// the handler: the simulator's Official Account is not wired to this sender).
func TestOfficialAccountRecognition(t *testing.T) {
	w := newWorld(t, worldOpts{noSender: true, cfg: func(c *fileshare.Config) { c.Transcriber.BaseURL = "" }})
	ev := event("mp-1", "o_user", schemas.EventData{Channel: schemas.ChannelMP, App: "service", MsgType: "voice", MediaID: "x", Recognition: "员工手册。"})
	replies, err := w.c.Handle(context.Background(), ev)
	if err != nil || len(replies) != 1 {
		t.Fatalf("Handle = %v, %v", replies, err)
	}
	raw, _ := json.Marshal(replies[0].Body)
	if !strings.Contains(string(raw), "员工手册2026.pdf") || !strings.Contains(string(raw), "http://hub.example/files/") {
		t.Fatalf("reply %s", raw)
	}
}

// A file over the size limit is offered as a signed link; the link serves the
// file to its user only until it expires, and looks the same as a bad link
// when forged or for a user who lost access.
func TestLargeFileLink(t *testing.T) {
	w := newWorld(t, worldOpts{})
	m := w.text(t, "zhangsan", "产品宣传片")
	i := strings.Index(m.Content, "http://hub.example/files/")
	if m.MsgType != "text" || i < 0 || !strings.Contains(m.Content, "超过企业微信") {
		t.Fatalf("answer %s %q", m.MsgType, m.Content)
	}
	token := strings.TrimPrefix(strings.Fields(m.Content[i:])[0], "http://hub.example/files/")
	srv := httptest.NewServer(fileshare.Links)
	t.Cleanup(srv.Close)
	get := func(tok string) (int, int64) {
		resp, err := http.Get(srv.URL + fileshare.LinkPath + tok)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		n, _ := io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, n
	}
	if code, n := get(token); code != http.StatusOK || n != fileshare.MaxWeComFile+1<<20 {
		t.Fatalf("GET link = %d, %d bytes", code, n)
	}
	forged := []byte(token)
	forged[len(forged)-3] ^= 1
	if code, _ := get(string(forged)); code != http.StatusNotFound {
		t.Fatalf("forged link = %d", code)
	}
	if code, _ := get("nonsense"); code != http.StatusNotFound {
		t.Fatalf("bad link = %d", code)
	}
	if len(w.audit.FilterField(zap.String("via", "link download")).All()) != 1 {
		t.Fatal("the download is not in the audit log")
	}
}

// A file added to a watched tree is found within seconds.
func TestWatchFindsNewFile(t *testing.T) {
	w := newWorld(t, worldOpts{noSender: true})
	dir := filepath.Join(w.root, fileshare.SampleCompany, "新建目录")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "季度总结.pptx"), []byte("slides"), 0o644); err != nil {
		t.Fatal(err)
	}
	has := func(p string) bool { _, ok := w.c.Index().Get("公司共享", p); return ok }
	eventually(t, "the new file in the index", func() bool { return has("新建目录/季度总结.pptx") })
	if err := os.Rename(filepath.Join(dir, "季度总结.pptx"), filepath.Join(dir, "年度总结.pptx")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the rename in the index", func() bool { return !has("新建目录/季度总结.pptx") && has("新建目录/年度总结.pptx") })
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the removal in the index", func() bool { return !has("新建目录/年度总结.pptx") })
}
