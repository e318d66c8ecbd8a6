package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/hub/hubtest"
	"github.com/wxhub/wxhub/wecom/sim"
)

// `wxhub new http-connector` writes a section that the demo takes as it is
// (with the system's URL filled in) and that answers through a whole hub.
func TestNewHTTPConnectorAnswersInTheHub(t *testing.T) {
	system := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/leave/zhangsan" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"answer": "年假余 5 天"}`))
	}))
	t.Cleanup(system.Close)
	dir := filepath.Join(t.TempDir(), "leave")
	out, err := captureStdout(func() error {
		return newCmd(context.Background(), []string{"http-connector", "leave", "--dir", dir, "--keyword", "假期",
			"--url", system.URL + "/leave/{{ .user }}"})
	})
	if err != nil || !strings.Contains(out, "wxhub connector test leave") {
		t.Fatalf("new http-connector: %v\n%s", err, out)
	}
	for _, f := range []string{"connector.yaml", "sample-event.json", "sample-response.json", "README.md"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	extra, err := hub.LoadDemoExtra(filepath.Join(dir, "connector.yaml"), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	h := hubtest.Start(t, hubtest.WithConfig(func(c *config.Config) {
		if err := extra.Apply(c); err != nil {
			t.Fatal(err)
		}
	}))
	ctx := waitCtx(t, 30*time.Second)
	if _, err := h.Sim.Say(ctx, "helpdesk", "zhangsan", "假期 余额"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "zhangsan" && m.Content == "leave：年假余 5 天" }); err != nil {
		t.Fatal(err)
	}
	if err := newCmd(context.Background(), []string{"http-connector", "leave", "--dir", dir}); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("a second scaffold over the first: %v, want refused", err)
	}
}
