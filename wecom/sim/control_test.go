package sim_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom/sim"
)

func TestRemote(t *testing.T) {
	g := newGateway(t, sim.DefaultCorpID)
	gw := httptest.NewServer(g)
	defer gw.Close()
	e := newEnv(t, func(c *sim.Config) { c.GatewayURL = gw.URL })
	r := sim.NewRemote(e.base)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	d, err := r.Say(ctx, "", "zhangsan", "订单 1001")
	if err != nil || d.ReplyContent != "收到: 订单 1001" {
		t.Fatalf("Say: %+v, %v", d, err)
	}
	if _, err := r.Event(ctx, "helpdesk", "zhangsan", schemas.EventData{Event: "click", EventKey: "MENU_1"}); err != nil {
		t.Fatal(err)
	}
	if ev := g.ev(1); ev.EventKey != "MENU_1" {
		t.Fatalf("event = %+v", ev)
	}
	if _, err := r.VerifyURL(ctx, "helpdesk"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Say(ctx, "", "ghost", "x"); !errors.Is(err, sim.ErrRemote) {
		t.Fatalf("unknown user: %v", err)
	}

	tok := e.token()
	e.send(tok, text("lisi", "one"))
	e.send(tok, text("wangwu", "two"))
	msgs, err := r.Sent(ctx, sim.SentFilter{User: "LISI"})
	if err != nil || len(msgs) != 1 || msgs[0].Content != "one" {
		t.Fatalf("Sent(user=lisi) = %+v, %v", msgs, err)
	}
	msgs, _ = r.Sent(ctx, sim.SentFilter{SinceSeq: msgs[0].Seq})
	if len(msgs) != 1 || msgs[0].User != "wangwu" {
		t.Fatalf("Sent(since) = %+v", msgs)
	}
	st, err := r.Stats(ctx)
	if err != nil || st.Sent != 2 || st.Calls["message/send"] != 2 || st.Callbacks != 2 {
		t.Fatalf("Stats = %+v, %v", st, err)
	}
	if err := r.FailNext(ctx, "message/send", 1, sim.CodeBusy); err != nil {
		t.Fatal(err)
	}
	if out := e.send(tok, text("lisi", "x")); code(out) != sim.CodeBusy {
		t.Fatalf("after remote FailNext: %v", out)
	}
	c, err := r.IssueOAuthCode(ctx, "lisi")
	if err != nil || c == "" {
		t.Fatalf("IssueOAuthCode: %q, %v", c, err)
	}
	if err := r.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := r.Sent(ctx, sim.SentFilter{}); len(msgs) != 0 {
		t.Fatalf("after Reset: %d messages", len(msgs))
	}
	if out := e.call("GET", "/sim/sent?since=yesterday", nil); out["error"] == nil {
		t.Fatalf("bad since: %v", out)
	}
}

func TestConfigValidate(t *testing.T) {
	app := sim.App{Name: "a", AgentID: 1, Secret: "s"}
	tests := []struct {
		name    string
		given   func(c *sim.Config)
		wantErr bool
	}{
		{name: "demo", given: func(*sim.Config) {}},
		{name: "duplicate app name", given: func(c *sim.Config) { a := app; a.Name = "helpdesk"; c.Apps = append(c.Apps, a) }, wantErr: true},
		{name: "shared secret", given: func(c *sim.Config) { a := app; a.Secret = "helpdesk-demo-secret"; c.Apps = append(c.Apps, a) }, wantErr: true},
		{name: "no agent id", given: func(c *sim.Config) { a := app; a.AgentID = 0; c.Apps = append(c.Apps, a) }, wantErr: true},
		{name: "short aes key", given: func(c *sim.Config) { c.Apps[0].EncodingAESKey = "short" }, wantErr: true},
		{name: "bad userid", given: func(c *sim.Config) { c.Users = append(c.Users, sim.User{UserID: "a b"}) }, wantErr: true},
		{name: "userid twice", given: func(c *sim.Config) { c.Users = append(c.Users, sim.User{UserID: "ZhangSan"}) }, wantErr: true},
		{name: "account without appid", given: func(c *sim.Config) { c.Accounts[0].AppID = "" }, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := sim.DemoConfig()
			tt.given(&cfg)
			_, err := sim.New(cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, sim.ErrConfig) {
				t.Fatalf("err %v does not wrap ErrConfig", err)
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		given   string
		wantErr bool
		check   func(t *testing.T, c sim.Config)
	}{
		{name: "full", given: "corp_id: wwx\ntoken_lifetime: 10m\napps:\n  - {name: a, agent_id: 7, secret: s}\nlimits:\n  member_per_minute: 5\ncallback:\n  timeout: 250ms\n",
			check: func(t *testing.T, c sim.Config) {
				if c.CorpID != "wwx" || c.TokenLifetime != 10*time.Minute || c.Limits.MemberPerMinute != 5 ||
					c.Limits.MemberPerHour != 1000 || c.Callback.Timeout != 250*time.Millisecond || c.Callback.Attempts != 3 {
					t.Fatalf("config = %+v", c)
				}
			}},
		{name: "unknown key", given: "corp_idd: x\n", wantErr: true},
		{name: "invalid app", given: "apps:\n  - {name: a, secret: s}\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := sim.LoadConfig(write(tt.name+".yaml", tt.given))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, sim.ErrConfig) {
				t.Fatalf("err %v does not wrap ErrConfig", err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
	if c, err := sim.LoadConfig(""); err != nil || c.Apps[0].Name != "helpdesk" {
		t.Fatalf("LoadConfig(\"\") = %+v, %v", c.Apps, err)
	}
}
