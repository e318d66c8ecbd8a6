package fileshare_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/webdav"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/connectors/fileshare"
	"github.com/wxhub/wxhub/schemas"
)

// davServer serves dir over WebDAV on loopback, with basic auth, counting
// requests; down makes it answer 503.
type davServer struct {
	*httptest.Server
	calls atomic.Int64
	down  atomic.Bool
}

func startDAV(t *testing.T, dir string) *davServer {
	t.Helper()
	d := &davServer{}
	h := &webdav.Handler{FileSystem: webdav.Dir(dir), LockSystem: webdav.NewMemLS()}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.calls.Add(1)
		if u, p, ok := r.BasicAuth(); !ok || u != "files" || p != "pw" {
			w.Header().Set("WWW-Authenticate", `Basic realm="share"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if d.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(d.Close)
	return d
}

func davConfig(root, url string) fileshare.Config {
	cfg := demoConfig(root, "")
	cfg.Sources = []fileshare.SourceConfig{{Name: "dav", Kind: "webdav", URL: url, User: "files", Password: "pw",
		Root: "/", Departments: []int{2}, Timeout: 2 * time.Second}}
	cfg.ScanInterval = 100 * time.Millisecond
	return cfg
}

// A WebDAV share behaves like a directory: searched, delivered, access
// checked, and a new file is found by the periodic scan.
func TestWebDAVSource(t *testing.T) {
	w := &world{b: bustest.Open(t, bus.Config{Partitions: 2}), sim: startSim(t), root: t.TempDir()}
	if err := fileshare.WriteSamples(w.root, now); err != nil {
		t.Fatal(err)
	}
	startSender(t, w.b, w.sim)
	dav := startDAV(t, filepath.Join(w.root, fileshare.SampleSales))
	w.c = startConnector(t, w.b, davConfig(w.root, dav.URL), &w.audit, "")

	if got := w.fileName(t, w.text(t, "zhangsan", "客户名单")); got != "客户名单.xlsx" {
		t.Fatalf("got %q", got)
	}
	if got := w.fileName(t, w.text(t, "wangwu", "xszb")); got != "销售周报-第48周.xlsx" {
		t.Fatalf("got %q", got)
	}
	if m := w.text(t, "lisi", "客户名单"); m.MsgType != "text" || !strings.HasPrefix(m.Content, "没有找到") {
		t.Fatalf("lisi (not in sales) got %s %q", m.MsgType, m.Content)
	}
	e, ok := w.c.Index().Get("dav", "客户名单.xlsx")
	if !ok || e.ETag == "" {
		t.Fatalf("entry %+v: want an ETag from the server", e)
	}
	if err := os.WriteFile(filepath.Join(w.root, fileshare.SampleSales, "周报", "销售周报-第49周.xlsx"), []byte("new report"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new file found by the scan", func() bool {
		_, ok := w.c.Index().Get("dav", "周报/销售周报-第49周.xlsx")
		return ok
	})
}

// The index survives a restart: with the share unreachable at the next start,
// searches are answered from the saved index.
func TestIndexSurvivesRestart(t *testing.T) {
	root := t.TempDir()
	if err := fileshare.WriteSamples(root, now); err != nil {
		t.Fatal(err)
	}
	dav := startDAV(t, filepath.Join(root, fileshare.SampleSales))
	b := bustest.Open(t, bus.Config{Partitions: 2})
	cfg := davConfig(root, dav.URL)
	cfg.ScanInterval = time.Hour

	ctx, cancel := context.WithCancel(context.Background())
	c1, err := fileshare.New(ctx, "restart", cfg, fileshare.Deps{Bus: b, Logger: zap.NewNop(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	<-c1.Scanned()
	n := c1.Index().Len()
	cancel()
	if n < 5 {
		t.Fatalf("first scan indexed %d files", n)
	}

	dav.down.Store(true)
	ctx2, cancel2 := context.WithCancel(context.Background())
	t.Cleanup(cancel2)
	c2, err := fileshare.New(ctx2, "restart", cfg, fileshare.Deps{Bus: b, Logger: zap.NewNop(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	<-c2.Scanned() // the scan failed: the saved index stays
	if c2.Index().Len() != n {
		t.Fatalf("after restart %d files, want %d", c2.Index().Len(), n)
	}
	replies, err := c2.Handle(context.Background(), event("r1", "zhangsan", schemas.EventData{MsgType: "text", Content: "找 客户名单"}))
	// Delivering reads the share, which is down: a retryable error, not a
	// "not found" (the file is known).
	if err == nil || len(replies) != 0 || strings.Contains(err.Error(), "answered user") {
		t.Fatalf("Handle while the share is down = %v, %v", replies, err)
	}
	dav.down.Store(false)
	replies, err = c2.Handle(context.Background(), event("r2", "zhangsan", schemas.EventData{MsgType: "text", Content: "找 客户名单"}))
	if err != nil || len(replies) != 1 {
		t.Fatalf("Handle after the share is back = %v, %v", replies, err)
	}
}
