package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestPprofOnlyOnLoopback(t *testing.T) {
	tests := []struct {
		name, addr, wantErr string
	}{
		{"all interfaces", "0.0.0.0:6060", "want a loopback address"},
		{"a host name", "example.com:6060", "want a loopback address"},
		{"no port", "127.0.0.1", "missing port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stop, err := servePprof(tt.addr, zap.NewNop())
			if err == nil {
				stop()
				t.Fatalf("servePprof(%q) accepted", tt.addr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestPprofServesProfiles(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	stop, err := servePprof(addr, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	res, err := http.Get("http://" + addr + "/debug/pprof/heap?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "heap profile") {
		t.Fatalf("status %d, body %.80q", res.StatusCode, body)
	}
}
