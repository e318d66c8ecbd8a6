package opsserver_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxhub/wxhub/internal/opsserver"
)

func TestServesMetricsHealthAndReadiness(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "wxhub_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	var notReady atomic.Bool
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- opsserver.Serve(ctx, ln, opsserver.Handler(reg, func(context.Context) error {
			if notReady.Load() {
				return errors.New("JetStream cannot write")
			}
			return nil
		}))
	}()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		name, path string
		notReady   bool
		wantCode   int
		wantBody   string
	}{
		{"metrics", "/metrics", false, 200, "wxhub_test_total 3"},
		{"healthz", "/healthz", false, 200, "ok"},
		{"readyz ready", "/readyz", false, 200, "ready"},
		{"readyz not ready", "/readyz", true, 503, "JetStream cannot write"},
		{"healthz while not ready", "/healthz", true, 200, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			notReady.Store(tt.notReady)
			code, body := get(tt.path)
			if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
				t.Fatalf("%s: %d %q, want %d with %q", tt.path, code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := (opsserver.Config{Listen: "nocolon"}).Validate(); err == nil || !strings.Contains(err.Error(), "metrics.listen") {
		t.Fatalf("bad listen accepted: %v", err)
	}
}
