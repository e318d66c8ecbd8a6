package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/wecom/sim"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// `make run` is what a new user tries first: the demo starts, and every
// connector it shows answers through the simulator.
func TestDemoAnswersWithEveryConnector(t *testing.T) {
	gw, simAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- demoCmd(ctx, []string{"--data", t.TempDir(), "--listen", gw, "--sim-listen", simAddr,
			"--erp-listen", freeAddr(t), "--tickets-listen", freeAddr(t)})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("demo stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("demo did not stop within 30 s")
		}
	})
	wctx := waitCtx(t, 60*time.Second)
	for {
		resp, err := http.Get("http://" + gw + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("demo exited: %v", err)
		case <-wctx.Done():
			t.Fatal("demo not ready within 60 s")
		case <-time.After(100 * time.Millisecond):
		}
	}
	remote := sim.NewRemote("http://" + simAddr)
	// The identity pieces answer: OIDC discovery, the directory's read API.
	for _, path := range []string{"/.well-known/openid-configuration", "/api/v1/directory/users/zhangsan"} {
		req, _ := http.NewRequest("GET", "http://"+gw+path, nil)
		req.Header.Set("Authorization", "Bearer "+hub.DemoAPIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %v %v", path, err, resp)
		}
		resp.Body.Close()
	}
	tests := []struct {
		user, say, want string
	}{
		{"zhangsan", "你好", "免打扰"},             // help
		{"lisi", "echo 演示", "echo: 演示"},       // echo
		{"wangwu", "订单 1001", "1001"},         // erp, from the sample ERP
		{"zhaoliu", "工单 77", "工单 77"},         // http, from the sample ticketing service
		{"sunqi", "免打扰 22:00-08:00", "22:00"}, // dnd
		{"zhouba", "合同模板", ""},                // fileshare: answered with a file
	}
	for _, tt := range tests {
		if _, err := remote.Say(wctx, "helpdesk", tt.user, tt.say); err != nil {
			t.Fatalf("say %q: %v", tt.say, err)
		}
	}
	for _, tt := range tests {
		for {
			sent, err := remote.Sent(wctx, sim.SentFilter{User: tt.user})
			if err != nil {
				t.Fatal(err)
			}
			if len(sent) > 0 {
				if tt.want == "" && sent[0].MsgType != "file" {
					t.Errorf("%q answered with %s %q, want a file", tt.say, sent[0].MsgType, sent[0].Content)
				}
				if !strings.Contains(sent[0].Content, tt.want) {
					t.Errorf("%q answered %q, want it to contain %q", tt.say, sent[0].Content, tt.want)
				}
				break
			}
			select {
			case <-wctx.Done():
				t.Fatalf("%q: no answer", tt.say)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}
