package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/connectors/erp"
	"github.com/wxhub/wxhub/connectors/erp/erpdemo"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom"
	"github.com/wxhub/wxhub/wecom/sim"
)

// e2e is a whole hub in this process on an embedded NATS server, with the
// simulator playing WeCom on real HTTP.
type e2e struct {
	cfg     *config.Config
	sim     *sim.Server
	hubAddr string
	bus     *bus.Bus
}

// withOnly runs only the named components (as --only does).
func withOnly(components ...string) func(*config.Config) {
	return func(c *config.Config) {
		onlyFor[c] = map[string]bool{}
		for _, name := range components {
			onlyFor[c][name] = true
		}
	}
}

// onlyFor passes withOnly's choice to startE2E without widening config.Config.
var onlyFor = map[*config.Config]map[string]bool{}

func startE2E(t *testing.T, mods ...func(*config.Config)) *e2e {
	t.Helper()
	scfg := sim.DemoConfig()
	scfg.Listen = "127.0.0.1:0"
	s, err := sim.New(scfg.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	scfg.Listen = strings.TrimPrefix(s.URL(), "http://")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := demoConfig(scfg, t.TempDir(), ln.Addr().String())
	cfg.NATS.Port = -1
	for _, m := range mods {
		m(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s.SetGatewayURL("http://" + ln.Addr().String())

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *hub, 1)
	done := make(chan error, 1)
	go func() {
		done <- runHub(ctx, cfg, zap.NewNop(), hubOptions{only: onlyFor[cfg], listener: ln, pollWait: 200 * time.Millisecond, ready: func(h *hub) { ready <- h }})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("hub stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("hub did not stop within 30 s")
		}
	})
	select {
	case h := <-ready:
		return &e2e{cfg: cfg, sim: s, hubAddr: h.addr, bus: h.bus}
	case err := <-done:
		t.Fatalf("hub failed to start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("hub did not start within 30 s")
	}
	return nil
}

func waitCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestE2ETextGetsHelpReply(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 20*time.Second)
	d, err := e.sim.Say(ctx, "helpdesk", "zhangsan", "你好")
	if err != nil || d.Status != 200 || d.Attempts != 1 {
		t.Fatalf("say: %+v %v", d, err)
	}
	m, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "zhangsan" })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Content, "免打扰") || m.App != "helpdesk" || m.MsgType != "text" {
		t.Errorf("reply = %+v, want the help text", m)
	}
}

func TestE2EWeChatRetriesGiveOneReply(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 20*time.Second)
	plain, err := wecom.BuildText(sim.DefaultCorpID, "lisi", 1000002, time.Now().Unix(), "echo once", "7000000000000000001")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // WeChat's three tries of one MsgId
		if d, err := e.sim.SendXML(ctx, "helpdesk", plain); err != nil || d.Status != 200 {
			t.Fatalf("try %d: %+v %v", i, d, err)
		}
	}
	if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "lisi" }); err != nil {
		t.Fatal(err)
	}
	// A marker message from the same user comes after the retries in order; once
	// its reply is there, a duplicate reply would have been sent already.
	if _, err := e.sim.Say(ctx, "helpdesk", "lisi", "echo marker"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "lisi" && strings.Contains(m.Content, "marker") }); err != nil {
		t.Fatal(err)
	}
	var once int
	for _, m := range e.sim.SentTo("lisi") {
		if strings.Contains(m.Content, "once") {
			once++
		}
	}
	if once != 1 {
		t.Fatalf("%d replies to one MsgId sent three times, want 1", once)
	}
	in, _ := e.bus.JS().Stream(ctx, bus.StreamIn)
	info, _ := in.Info(ctx)
	if info.State.Msgs != 2 {
		t.Fatalf("WXHUB_IN holds %d events, want 2 (the retried one once, and the marker)", info.State.Msgs)
	}
}

func TestE2EOneUserInOrderOthersInParallel(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 60*time.Second)
	users := []string{"zhangsan", "lisi", "wangwu", "zhaoliu"}
	var wg sync.WaitGroup
	errs := make(chan error, len(users))
	for _, u := range users {
		wg.Add(1)
		go func() { // users write at the same time; each one's messages in sequence
			defer wg.Done()
			for i := 1; i <= 10; i++ {
				if _, err := e.sim.Say(ctx, "helpdesk", u, fmt.Sprintf("echo %s-%02d", u, i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, u := range users {
		if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool {
			return m.User == u && strings.HasSuffix(m.Content, u+"-10")
		}); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		var got []string
		for _, m := range e.sim.SentTo(u) {
			got = append(got, m.Content[strings.LastIndex(m.Content, "-")+1:])
		}
		want := "01 02 03 04 05 06 07 08 09 10"
		if strings.Join(got, " ") != want {
			t.Errorf("%s got replies in order %v, want %s", u, got, want)
		}
	}
}

func TestE2EPushAPIReachesWeCom(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 20*time.Second)
	out, err := runSend(ctx, "--url", "http://"+e.hubAddr, "--key", demoAPIKey, "--to", "wangwu", "--priority", "urgent", "审批已通过")
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
		st, err := runSend(ctx, "--url", "http://"+e.hubAddr, "--key", demoAPIKey, "--status", id)
		if err == nil && strings.Contains(st, `"status":"sent"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never became sent: %s %v", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runSend runs the send command and captures what it printed.
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

func TestE2EERPApprovalCardUpdatedForEveryone(t *testing.T) {
	erpSrv := erpdemo.New(erpdemo.Config{})
	if err := erpSrv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { erpSrv.Close() })
	e := startE2E(t, func(c *config.Config) {
		c.Connectors.ERP = &erp.Config{BaseURL: erpSrv.URL(), RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond}
	})
	erpSrv.SetHub("http://"+e.hubAddr, demoAPIKey)
	ctx := waitCtx(t, 30*time.Second)

	if _, err := e.sim.Say(ctx, "helpdesk", "zhangsan", "订单 1001"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "zhangsan" && strings.Contains(m.Content, "1001") }); err != nil {
		t.Fatalf("no order answer: %v", err)
	}

	a, push, err := erpSrv.CreateApproval(ctx, erpdemo.NewApproval{Title: "采购单", AmountCents: 120000, Requester: "lisi", Approvers: []string{"zhangsan", "wangwu"}})
	if err != nil || push.ID == "" {
		t.Fatalf("create approval: %+v %v", push, err)
	}
	for _, u := range []string{"zhangsan", "wangwu"} {
		if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == u && m.MsgType == "template_card" }); err != nil {
			t.Fatalf("%s got no approval card: %v", u, err)
		}
	}
	// The ERP is down when zhangsan clicks: told once, applied when it is back.
	erpSrv.SetDown(true)
	if _, err := e.sim.SendEvent(ctx, "helpdesk", "zhangsan", schemas.EventData{Event: "template_card_event",
		EventKey: "approve", TaskID: erp.TaskID(a.ID), CardType: "button_interaction"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool {
		return m.User == "zhangsan" && strings.Contains(m.Content, "ERP") && m.MsgType == "text"
	}); err != nil {
		t.Fatalf("user not told the ERP is unavailable: %v", err)
	}
	erpSrv.SetDown(false)
	for _, u := range []string{"zhangsan", "wangwu"} {
		if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == u && m.API == "message/update_template_card" }); err != nil {
			t.Fatalf("%s's card was not updated: %v", u, err)
		}
	}
	if got, _ := erpSrv.Approval(a.ID); got.Status != "approved" {
		t.Fatalf("approval status %q, want approved", got.Status)
	}
}

func TestE2EMetricsMove(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 20*time.Second)
	for i := 0; i < 3; i++ {
		if _, err := e.sim.Say(ctx, "helpdesk", "zhaoliu", fmt.Sprintf("echo metrics %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return strings.HasSuffix(m.Content, "metrics 2") }); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`wxhub_gateway_callbacks_total{app="helpdesk",channel="wecom",result="ok",type="text"} 3`,
		`wxhub_router_events_total{connector="echo",rule="builtin-echo"} 3`,
		`wxhub_sender_sends_total{app="helpdesk",errcode="0",result="sent"} 3`,
		`wxhub_stream_messages{stream="WXHUB_IN"} 3`,
		`wxhub_e2e_latency_seconds_count{app="helpdesk"} 3`,
		"\ngo_gc_heap_live_bytes ", "\ngo_gc_heap_goal_bytes ", "\ngo_gc_gogc_percent ", "\ngo_cpu_classes_gc_total_cpu_seconds_total ", "\nprocess_resident_memory_bytes ",
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		body := getBody(t, "http://"+e.hubAddr+"/metrics")
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %s", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestE2EIncidentRoomInOneCall(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 20*time.Second)
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+e.hubAddr+"/api/v1/chats", strings.NewReader(
		`{"app":"helpdesk","name":"故障 42","owner":"zhangsan","userlist":["zhangsan","lisi","zhouba"],
		  "message":{"msgtype":"text","text":{"content":"主库宕机，请进群处理"}}}`))
	req.Header.Set("Authorization", "Bearer "+demoAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("status %d %s", resp.StatusCode, body)
	}
	var acc struct{ ChatID string }
	json.Unmarshal(body, &acc)
	m, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.API == "appchat/send" })
	if err != nil {
		t.Fatal(err)
	}
	if m.ChatID != acc.ChatID || m.Content != "主库宕机，请进群处理" {
		t.Fatalf("sent %+v, want the first message in chat %s", m, acc.ChatID)
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

// A connector in its own process logs in as its own NATS user, which may use
// its own subjects only; the hub's other components run elsewhere.
func TestE2EConnectorProcessWithItsOwnNATSUser(t *testing.T) {
	e := startE2E(t, func(c *config.Config) {
		c.NATS.Users = []bus.UserConfig{{Name: "echo", Password: "echo-secret-123", Connector: "echo"}}
	}, withOnly("gateway", "router", "sender", "connector:help", "connector:dnd"))
	ctx := waitCtx(t, 30*time.Second)

	ccfg := *e.cfg
	ccfg.NATS = bus.Config{URL: e.bus.ClientURL(), User: "echo", Password: "echo-secret-123", Partitions: e.cfg.NATS.Partitions}
	hctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- runHub(hctx, &ccfg, zap.NewNop(), hubOptions{only: map[string]bool{"connector:echo": true}, pollWait: 200 * time.Millisecond})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("connector process: %v", err)
		}
	}()
	if _, err := e.sim.Say(ctx, "helpdesk", "zhouba", "echo 独立进程"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "zhouba" && m.Content == "echo: 独立进程" }); err != nil {
		t.Fatalf("no reply from the connector process: %v", err)
	}
	// The same login may not run another connector.
	wrong := ccfg
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second) // refused requests go unanswered: bound the wait
	defer cancel()
	err := runHub(wctx, &wrong, zap.NewNop(), hubOptions{only: map[string]bool{"connector:help": true}, pollWait: 200 * time.Millisecond})
	if err == nil {
		t.Fatal("the echo user ran the help connector")
	}
}
