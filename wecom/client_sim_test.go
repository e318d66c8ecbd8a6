package wecom_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wxhub/wxhub/wecom"
	"github.com/wxhub/wxhub/wecom/sim"
)

const demoSecret = "helpdesk-demo-secret" // sim.DemoConfig's helpdesk app

// startSim runs the demo corp of the simulator on a free loopback port.
func startSim(t *testing.T) (*sim.Server, *wecom.Client) {
	t.Helper()
	cfg := sim.DemoConfig()
	cfg.GatewayURL = ""
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, wecom.NewClient(s.URL(), wecom.WithTimeout(5*time.Second))
}

func text(to, content string) map[string]any {
	return map[string]any{"touser": to, "msgtype": "text", "agentid": 1000002, "text": map[string]string{"content": content}}
}

func TestClientAgainstSimulator(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(t *testing.T, s *sim.Server, c *wecom.Client, token string) error
		// wantErr is the class sentinel, wantCode the errcode (0: none).
		wantErr  error
		wantCode int
	}{
		{
			name: "send text",
			run: func(t *testing.T, s *sim.Server, c *wecom.Client, token string) error {
				res, err := c.SendMessage(ctx, token, text("zhangsan", "你好"))
				if err == nil && (res.MsgID == "" || len(s.SentTo("zhangsan")) != 1) {
					t.Errorf("result %+v, sent %v", res, s.SentTo("zhangsan"))
				}
				return err
			},
		},
		{
			name: "unknown member reported, not fatal",
			run: func(t *testing.T, s *sim.Server, c *wecom.Client, token string) error {
				res, err := c.SendMessage(ctx, token, text("zhangsan|nobody", "hi"))
				if err == nil && !strings.Contains(res.InvalidUser, "nobody") {
					t.Errorf("InvalidUser = %q", res.InvalidUser)
				}
				return err
			},
		},
		{
			name: "nobody valid",
			run: func(t *testing.T, s *sim.Server, c *wecom.Client, token string) error {
				_, err := c.SendMessage(ctx, token, text("nobody", "hi"))
				return err
			},
			wantErr: wecom.ErrPermanent, wantCode: 81013,
		},
		{
			name: "expired token",
			run: func(t *testing.T, s *sim.Server, c *wecom.Client, token string) error {
				s.ExpireTokens()
				_, err := c.SendMessage(ctx, token, text("zhangsan", "hi"))
				if wecom.IsTokenExpired(err) {
					fresh, _, terr := c.GetToken(ctx, sim.DefaultCorpID, demoSecret)
					if terr != nil || fresh == token {
						t.Errorf("refresh: %q, %v", fresh, terr)
					}
					if _, rerr := c.SendMessage(ctx, fresh, text("zhangsan", "hi")); rerr != nil {
						t.Errorf("send after refresh: %v", rerr)
					}
				}
				return err
			},
			wantErr: wecom.ErrTokenExpired, wantCode: 42001,
		},
		{
			name: "frequency limit",
			run: func(t *testing.T, s *sim.Server, c *wecom.Client, token string) error {
				s.FailNextOn("message/send", 1, 45009)
				_, err := c.SendMessage(ctx, token, text("zhangsan", "hi"))
				if _, again := c.SendMessage(ctx, token, text("zhangsan", "hi")); again != nil {
					t.Errorf("retry after 45009: %v", again)
				}
				return err
			},
			wantErr: wecom.ErrRetryable, wantCode: 45009,
		},
		{
			name: "busy",
			run: func(t *testing.T, s *sim.Server, c *wecom.Client, token string) error {
				s.FailNext(1, -1)
				_, err := c.SendMessage(ctx, token, text("zhangsan", "hi"))
				return err
			},
			wantErr: wecom.ErrRetryable, wantCode: -1,
		},
		{
			name: "http 503",
			run: func(t *testing.T, s *sim.Server, c *wecom.Client, token string) error {
				s.FailNext(1, 503)
				_, err := c.SendMessage(ctx, token, text("zhangsan", "hi"))
				var he *wecom.HTTPError
				if !errors.As(err, &he) || he.Status != 503 {
					t.Errorf("err = %v, want HTTP 503", err)
				}
				return err
			},
			wantErr: wecom.ErrRetryable,
		},
		{
			name: "ip not trusted",
			run: func(t *testing.T, s *sim.Server, c *wecom.Client, token string) error {
				s.FailNext(1, 60020)
				_, err := c.SendMessage(ctx, token, text("zhangsan", "hi"))
				if err != nil && !strings.Contains(err.Error(), "trusted IP list") {
					t.Errorf("60020 message = %v", err)
				}
				return err
			},
			wantErr: wecom.ErrPermanent, wantCode: 60020,
		},
		{
			name: "wrong secret",
			run: func(t *testing.T, s *sim.Server, c *wecom.Client, token string) error {
				_, _, err := c.GetToken(ctx, sim.DefaultCorpID, "wrong-secret")
				if err != nil && strings.Contains(err.Error(), "wrong-secret") {
					t.Errorf("error leaks the secret: %v", err)
				}
				return err
			},
			wantErr: wecom.ErrPermanent, wantCode: 40001,
		},
		{
			name: "another app's agentid",
			run: func(t *testing.T, s *sim.Server, c *wecom.Client, token string) error {
				body := text("zhangsan", "hi")
				body["agentid"] = 1000099
				_, err := c.SendMessage(ctx, token, body)
				return err
			},
			wantErr: wecom.ErrPermanent,
		},
		{
			name: "app chat",
			run: func(t *testing.T, s *sim.Server, c *wecom.Client, token string) error {
				id, err := c.CreateAppChat(ctx, token, map[string]any{"name": "设计组", "owner": "zhangsan", "userlist": []string{"zhangsan", "wangwu"}})
				if err != nil {
					return err
				}
				return c.SendAppChat(ctx, token, map[string]any{"chatid": id, "msgtype": "text", "text": map[string]string{"content": "hi"}})
			},
		},
		{
			name: "missing chat",
			run: func(t *testing.T, s *sim.Server, c *wecom.Client, token string) error {
				return c.SendAppChat(ctx, token, map[string]any{"chatid": "nochat", "msgtype": "text", "text": map[string]string{"content": "hi"}})
			},
			wantErr: wecom.ErrPermanent, wantCode: 86003,
		},
		{
			name: "update card once",
			run: func(t *testing.T, s *sim.Server, c *wecom.Client, token string) error {
				code := s.IssueResponseCode("helpdesk", "zhangsan")
				body := map[string]any{"userids": []string{"zhangsan"}, "agentid": 1000002, "response_code": code, "button": map[string]string{"replace_name": "已确认"}}
				if _, err := c.UpdateTemplateCard(ctx, token, body); err != nil {
					return err
				}
				_, err := c.UpdateTemplateCard(ctx, token, body) // a response code updates once
				return err
			},
			wantErr: wecom.ErrPermanent,
		},
		{
			name: "upload media",
			run: func(t *testing.T, s *sim.Server, c *wecom.Client, token string) error {
				id, err := c.UploadMedia(ctx, token, "file", "工资条.pdf", strings.NewReader("%PDF-1.4 payslip"))
				if err == nil {
					m, ok := s.MediaByID(id)
					if !ok || string(m.Data) != "%PDF-1.4 payslip" || m.Filename != "工资条.pdf" {
						t.Errorf("media %q: %+v %v", id, m, ok)
					}
				}
				return err
			},
		},
		{
			name: "oauth code",
			run: func(t *testing.T, s *sim.Server, c *wecom.Client, token string) error {
				code, err := s.IssueOAuthCode("lisi")
				if err != nil {
					t.Fatal(err)
				}
				u, err := c.GetUserInfo(ctx, token, code)
				if err != nil {
					return err
				}
				if u.UserID != "lisi" {
					t.Errorf("UserInfo = %+v", u)
				}
				_, err = c.GetUserInfo(ctx, token, code) // one use only
				return err
			},
			wantErr: wecom.ErrPermanent, wantCode: 40029,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := startSim(t)
			token, ttl, err := c.GetToken(ctx, sim.DefaultCorpID, demoSecret)
			if err != nil || token == "" || ttl != 7200*time.Second {
				t.Fatalf("GetToken = %q, %v, %v", token, ttl, err)
			}
			err = tt.run(t, s, c, token)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantCode != 0 && !errors.Is(err, &wecom.APIError{Code: tt.wantCode}) {
				t.Fatalf("err = %v, want errcode %d", err, tt.wantCode)
			}
			if strings.Contains(err.Error(), token) {
				t.Fatalf("error leaks the token: %v", err)
			}
		})
	}
}
