package main

import (
	"strings"
	"testing"
	"time"

	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/wecom/sim"
)

// `wxhub trace USER` prints the path of the user's message from the
// dashboard's trace API: the callback's event, its route to the connector,
// the reply and what became of it.
func TestTraceCommandPrintsAUsersPath(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 60*time.Second)
	if _, err := e.sim.Say(ctx, "helpdesk", "zhouba", "echo 路径"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "zhouba" }); err != nil {
		t.Fatal(err)
	}
	var out string
	for {
		var err error
		out, err = captureStdout(func() error {
			return traceCmd(ctx, []string{"--url", "http://" + e.hubAddr, "--token", hub.DemoDashboardToken, "zhouba"})
		})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "event") && strings.Contains(out, "outbound") && strings.Contains(out, "sent") {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("trace lacks event, outbound or sent:\n%s", out)
		case <-time.After(200 * time.Millisecond):
		}
	}
	// One trace: the callback's event, the echo connector's reply, its fate.
	if strings.Count(out, "trace ") != 1 || !strings.Contains(out, "connector/echo") {
		t.Errorf("want one trace with the echo connector's reply:\n%s", out)
	}
	t.Logf("wxhub trace zhouba:\n%s", out)
	if _, err := captureStdout(func() error {
		return traceCmd(ctx, []string{"--url", "http://" + e.hubAddr, "--token", "wrong", "zhouba"})
	}); err == nil || !strings.Contains(err.Error(), "wrong token") {
		t.Errorf("wrong token: %v", err)
	}
}
