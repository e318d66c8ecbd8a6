package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/connectors/erp"
	"github.com/wxhub/wxhub/connectors/erp/erpdemo"
	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom"
	"github.com/wxhub/wxhub/wecom/sim"
)

// withOnly runs only the named components (as --only does).
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

// runSend runs the send command and captures what it printed.
func TestE2EERPApprovalCardUpdatedForEveryone(t *testing.T) {
	erpSrv := erpdemo.New(erpdemo.Config{})
	if err := erpSrv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { erpSrv.Close() })
	e := startE2E(t, withConfig(func(c *config.Config) {
		c.Connectors = map[string]yaml.Node{"erp": hub.Section(erp.Config{BaseURL: erpSrv.URL(), RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond})}
	}))
	erpSrv.SetHub("http://"+e.hubAddr, hub.DemoAPIKey)
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
	// The requester hears the outcome.
	if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool {
		return m.User == "lisi" && strings.Contains(m.Content, "采购单") && strings.Contains(m.Content, "已同意 by zhangsan")
	}); err != nil {
		t.Fatalf("the requester was not told the outcome: %v", err)
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
	req.Header.Set("Authorization", "Bearer "+hub.DemoAPIKey)
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

// A connector in its own process logs in as its own NATS user, which may use
// its own subjects only; the hub's other components run elsewhere.
func TestE2EConnectorProcessWithItsOwnNATSUser(t *testing.T) {
	e := startE2E(t, withConfig(func(c *config.Config) {
		c.NATS.Users = []bus.UserConfig{{Name: "echo", Password: "echo-secret-123", Connector: "echo"}}
	}), withOnly("gateway", "router", "sender", "connector:help", "connector:dnd"))
	ctx := waitCtx(t, 30*time.Second)

	ccfg := *e.cfg
	ccfg.NATS = bus.Config{URL: e.bus.ClientURL(), User: "echo", Password: "echo-secret-123", Partitions: e.cfg.NATS.Partitions}
	setup, err := hub.Configure(&ccfg, hub.Builtins)
	if err != nil {
		t.Fatal(err)
	}
	_, stop, err := hub.Start(ctx, setup, zap.NewNop(), hub.Options{Only: map[string]bool{"connector:echo": true}, PollWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := stop(); err != nil {
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
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second) // refused requests go unanswered: bound the wait
	defer cancel()
	err = hub.Run(wctx, setup, zap.NewNop(), hub.Options{Only: map[string]bool{"connector:help": true}, PollWait: 200 * time.Millisecond})
	if err == nil {
		t.Fatal("the echo user ran the help connector")
	}
}

// The same, with nothing configured: the connector process finds its generated
// login (connector-echo) in the install's credentials file, and that login
// cannot read the WeCom access token.
func TestE2EConnectorProcessWithItsGeneratedLogin(t *testing.T) {
	e := startE2E(t, withOnly("gateway", "router", "sender", "connector:help", "connector:dnd"))
	ctx := waitCtx(t, 30*time.Second)

	ccfg := *e.cfg
	ccfg.NATS = bus.Config{URL: e.bus.ClientURL(), DataDir: e.cfg.NATS.DataDir, Partitions: e.cfg.NATS.Partitions}
	setup, err := hub.Configure(&ccfg, hub.Builtins)
	if err != nil {
		t.Fatal(err)
	}
	_, stop, err := hub.Start(ctx, setup, zap.NewNop(), hub.Options{Only: map[string]bool{"connector:echo": true}, PollWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("connector process: %v", err)
		}
	}()
	if _, err := e.sim.Say(ctx, "helpdesk", "zhouba", "echo 独立进程"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "zhouba" && m.Content == "echo: 独立进程" }); err != nil {
		t.Fatalf("no reply from the connector process: %v", err)
	}
	creds, err := bus.LoadCredentials(e.cfg.NATS.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(e.bus.ClientURL(), nats.UserInfo(bus.ConnectorLogin("echo"), creds.Users[bus.ConnectorLogin("echo")]),
		nats.CustomInboxPrefix(bus.InboxPrefix("echo")))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Request("$JS.API.DIRECT.GET.KV_"+bus.BucketTokens+".$KV."+bus.BucketTokens+".helpdesk", nil, 2*time.Second); err == nil {
		t.Fatal("the connector's login read the access token")
	}
}

// In an incident room, the first message hits 86003 (the chat is not there
// yet for WeCom) and is retried: the next message to the room waits for it,
// so the room reads in order.
func TestE2EIncidentRoomOrderUnder86003(t *testing.T) {
	e := startE2E(t)
	ctx := waitCtx(t, 30*time.Second)
	e.sim.FailNextOn("appchat/send", 1, 86003)
	post := func(path, body string) map[string]any {
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+e.hubAddr+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+hub.DemoAPIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != 202 {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, out)
		}
		return out
	}
	acc := post("/api/v1/chats", `{"app":"helpdesk","name":"故障 43","owner":"zhangsan","userlist":["zhangsan","lisi"],
		"message":{"msgtype":"text","text":{"content":"1 主库宕机"}}}`)
	chatID, _ := acc["chatid"].(string)
	if chatID == "" {
		t.Fatalf("no chatid in %v", acc)
	}
	for _, text := range []string{"2 正在切换", "3 已恢复"} {
		post("/api/v1/messages", fmt.Sprintf(`{"app":"helpdesk","chatid":%q,"msgtype":"text","text":{"content":%q}}`, chatID, text))
	}
	var got []string
	for len(got) < 3 {
		got = got[:0]
		for _, m := range e.sim.Sent() {
			if m.API == "appchat/send" && m.ChatID == chatID && m.User == "zhangsan" {
				got = append(got, m.Content)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the room got %q", got)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if strings.Join(got, ",") != "1 主库宕机,2 正在切换,3 已恢复" {
		t.Fatalf("the room reads %q, want the three in order", got)
	}
}
