package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom"
	"github.com/wxhub/wxhub/wecom/sim"
)

func TestE2EPushAPIReachesWeCom(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 20*time.Second)
	out, err := runSend(ctx, "--url", "http://"+e.hubAddr, "--key", hub.DemoAPIKey, "--to", "wangwu", "--priority", "urgent", "审批已通过")
	if err != nil {
		t.Fatalf("send: %v %s", err, out)
	}
	m, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "wangwu" })
	if err != nil || m.Content != "审批已通过" {
		t.Fatalf("sent %+v %v", m, err)
	}
	id := strings.Fields(out)[0]
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := runSend(ctx, "--url", "http://"+e.hubAddr, "--key", hub.DemoAPIKey, "--status", id)
		if err == nil && strings.Contains(st, `"status":"sent"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never became sent: %s %v", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func runSend(ctx context.Context, args ...string) (string, error) {
	return captureStdout(func() error { return sendCmd(ctx, args) })
}

func TestSimCommandsAgainstTheDemoHub(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 20*time.Second)
	simURL := e.sim.URL()
	out, err := captureStdout(func() error {
		return simCmd(ctx, []string{"say", "--sim", simURL, "wangwu", "echo 命令行"})
	})
	if err != nil || !strings.Contains(out, "HTTP 200") {
		t.Fatalf("sim say: %v %s", err, out)
	}
	out, err = captureStdout(func() error {
		return simCmd(ctx, []string{"event", "--sim", simURL, "--key", "MENU_HELP", "wangwu", "click"})
	})
	if err != nil || !strings.Contains(out, "HTTP 200") {
		t.Fatalf("sim event: %v %s", err, out)
	}
	// The echo reply and the help text for the menu click come from two
	// connectors, so their order is not fixed: wait for both, then list them.
	for _, want := range []string{"echo: ", "您好"} {
		if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "wangwu" && strings.Contains(m.Content, want) }); err != nil {
			t.Fatalf("no %q reply: %v", want, err)
		}
	}
	out, err = captureStdout(func() error {
		return simCmd(ctx, []string{"sent", "--sim", simURL, "--user", "wangwu", "--wait", "10s"})
	})
	if err != nil || !strings.Contains(out, "echo: ") || !strings.Contains(out, "您好") {
		t.Fatalf("sim sent: %v %s", err, out)
	}
}

func TestDLQCommandsReplayADeadLetter(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 20*time.Second)
	out := schemas.Outbound{SpecVersion: schemas.SpecVersion, ID: "m-dead-1", Source: "api/erp", Type: "wxhub.out.message",
		Time: time.Now().UTC(), DataContentType: "application/json",
		Data: schemas.OutboundData{App: "helpdesk", Kind: schemas.KindMessage,
			Body: json.RawMessage(`{"touser":"sunqi","msgtype":"text","text":{"content":"来自死信的消息"}}`)}}
	orig, _ := json.Marshal(out)
	if err := e.bus.PublishDeadLetter(ctx, "dead-1", schemas.DeadLetterData{Stage: "sender", Reason: "errcode 60020: IP not trusted",
		Attempts: 8, Subject: bus.OutSubject("helpdesk"), Original: orig}); err != nil {
		t.Fatal(err)
	}
	dlq := func(args ...string) string {
		t.Helper()
		s, err := captureStdout(func() error {
			return dlqCmd(ctx, append([]string{"--nats", e.bus.ClientURL(), "--data-dir", e.bus.Config().DataDir}, args...))
		})
		if err != nil {
			t.Fatalf("dlq %v: %v", args, err)
		}
		return s
	}
	list := dlq("list")
	if !strings.Contains(list, "60020") || !strings.Contains(list, "sender") {
		t.Fatalf("dlq list:\n%s", list)
	}
	seq := strings.Fields(strings.Split(list, "\n")[1])[0]
	if show := dlq("show", seq); !strings.Contains(show, "来自死信的消息") && !strings.Contains(show, "sunqi") {
		t.Fatalf("dlq show:\n%s", show)
	}
	dlq("replay", seq)
	if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "sunqi" && m.Content == "来自死信的消息" }); err != nil {
		t.Fatalf("replayed message not delivered: %v", err)
	}
	if list := dlq("list"); strings.Contains(list, "60020") {
		t.Fatalf("replayed entry still listed:\n%s", list)
	}
	if _, err := captureStdout(func() error {
		return dlqCmd(ctx, []string{"--nats", e.bus.ClientURL(), "--data-dir", e.bus.Config().DataDir, "show", seq})
	}); !errors.Is(err, bus.ErrDLQNotFound) {
		t.Fatalf("show of a replayed entry: %v, want not found", err)
	}
}

// The dry runs print what would be sent and send nothing.
func TestDryRunCommands(t *testing.T) {
	ctx := waitCtx(t, 10*time.Second)
	out, err := captureStdout(func() error {
		return connectorCmd(ctx, []string{"test", "tickets", "--text", "工单 77"})
	})
	if err != nil || !strings.Contains(out, "GET http://127.0.0.1:8082/tickets/77") || !strings.Contains(out, "Bearer ****") ||
		strings.Contains(out, "demo-tickets-token") {
		t.Fatalf("connector test: %v\n%s", err, out)
	}
	out, err = captureStdout(func() error {
		return hookCmd(ctx, []string{"test", "alertmanager", "--payload", "../../gateway/hooks/testdata/alertmanager.json"})
	})
	if err != nil || !strings.Contains(out, "would queue on wxhub.out.helpdesk") || !strings.Contains(out, "HighLatency") {
		t.Fatalf("hook test: %v\n%s", err, out)
	}
	if err := hookCmd(ctx, []string{"test", "nope", "--payload", "x"}); err == nil || !strings.Contains(err.Error(), `no hook "nope"`) {
		t.Fatalf("unknown hook: %v", err)
	}
}

// The same text pushed twice reaches the member twice (the hub flags only
// contents new to their recipients), and a system that calls WeCom itself
// with enable_duplicate_check sees its repeat dropped: `wxhub sim sent` and
// `wxhub sim dropped` show that drop with its reason.
func TestSimSentShowsADuplicateDrop(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 30*time.Second)
	for range 2 {
		out, err := runSend(ctx, "--url", "http://"+e.hubAddr, "--key", hub.DemoAPIKey, "--to", "zhaoliu", "会议改到三点")
		if err != nil {
			t.Fatalf("send: %v %s", err, out)
		}
	}
	for len(e.sim.SentTo("zhaoliu")) < 2 {
		select {
		case <-ctx.Done():
			t.Fatalf("the same push twice reached zhaoliu %d times, want 2", len(e.sim.SentTo("zhaoliu")))
		case <-time.After(50 * time.Millisecond):
		}
	}
	// A legacy system calling WeCom directly, duplicate check on, twice.
	tok, _, err := wecom.NewClient(e.sim.URL()).GetToken(ctx, sim.DefaultCorpID, "helpdesk-demo-secret")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		body := map[string]any{"touser": "sunqi", "agentid": 1000002, "msgtype": "text", "text": map[string]string{"content": "直连 WeCom"},
			"enable_duplicate_check": 1, "duplicate_check_interval": 1800}
		if _, err := wecom.NewClient(e.sim.URL()).SendMessage(ctx, tok, body); err != nil {
			t.Fatal(err)
		}
	}
	out, err := captureStdout(func() error {
		return simCmd(ctx, []string{"sent", "--sim", e.sim.URL(), "--user", "sunqi"})
	})
	if err != nil || strings.Count(out, "直连 WeCom") != 2 || !strings.Contains(out, "DROPPED: duplicate") || !strings.Contains(out, "delivered") {
		t.Fatalf("sim sent: %v\n%s", err, out)
	}
	out, err = captureStdout(func() error {
		return simCmd(ctx, []string{"dropped", "--sim", e.sim.URL(), "--json"})
	})
	if err != nil || !strings.Contains(out, `"reason": "duplicate"`) || strings.Contains(out, "会议改到三点") {
		t.Fatalf("sim dropped: %v\n%s", err, out)
	}
}
