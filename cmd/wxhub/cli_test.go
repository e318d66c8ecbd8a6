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
		s, err := captureStdout(func() error { return dlqCmd(ctx, append([]string{"--nats", e.bus.ClientURL()}, args...)) })
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
	if _, err := captureStdout(func() error { return dlqCmd(ctx, []string{"--nats", e.bus.ClientURL(), "show", seq}) }); !errors.Is(err, bus.ErrDLQNotFound) {
		t.Fatalf("show of a replayed entry: %v, want not found", err)
	}
}

// The same text pushed twice: WeCom's duplicate check drops the second (errcode
// 0). `wxhub sim sent` lists it as dropped with the reason, and the hub's own
// status of the message says "dropped".
func TestSimSentShowsADuplicateDrop(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 30*time.Second)
	var ids []string
	for range 2 {
		out, err := runSend(ctx, "--url", "http://"+e.hubAddr, "--key", hub.DemoAPIKey, "--to", "zhaoliu", "会议改到三点")
		if err != nil {
			t.Fatalf("send: %v %s", err, out)
		}
		ids = append(ids, strings.Fields(out)[0])
		if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "zhaoliu" }); err != nil {
			t.Fatal(err)
		}
	}
	for {
		st, err := runSend(ctx, "--url", "http://"+e.hubAddr, "--key", hub.DemoAPIKey, "--status", ids[1])
		if err == nil && strings.Contains(st, `"status":"dropped"`) && strings.Contains(st, "duplicate") {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("status of the second push never became dropped: %s %v", st, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	out, err := captureStdout(func() error {
		return simCmd(ctx, []string{"sent", "--sim", e.sim.URL(), "--user", "zhaoliu"})
	})
	if err != nil || strings.Count(out, "会议改到三点") != 2 || !strings.Contains(out, "DROPPED: duplicate") || !strings.Contains(out, "delivered") {
		t.Fatalf("sim sent: %v\n%s", err, out)
	}
	out, err = captureStdout(func() error {
		return simCmd(ctx, []string{"dropped", "--sim", e.sim.URL(), "--json"})
	})
	if err != nil || !strings.Contains(out, `"reason": "duplicate"`) {
		t.Fatalf("sim dropped: %v\n%s", err, out)
	}
}
