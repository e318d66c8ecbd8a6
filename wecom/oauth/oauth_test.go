package oauth_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/wxhub/wxhub/internal/idtest"
	"github.com/wxhub/wxhub/wecom"
	"github.com/wxhub/wxhub/wecom/oauth"
)

func TestURL(t *testing.T) {
	l := oauth.Login{CorpID: "ww01", AgentID: 1000002}
	got := l.URL("https://hub.example.com/oidc/callback", "abc")
	want := "https://open.weixin.qq.com/connect/oauth2/authorize?appid=ww01&redirect_uri=https%3A%2F%2Fhub.example.com%2Foidc%2Fcallback&response_type=code&scope=snsapi_base&state=abc&agentid=1000002#wechat_redirect"
	if got != want {
		t.Fatalf("URL =\n%s\nwant\n%s", got, want)
	}
}

func TestWebURL(t *testing.T) {
	l := oauth.Login{CorpID: "ww01", AgentID: 1000002}
	got := l.WebURL("https://hub.example.com/oidc/callback", "abc")
	want := "https://login.work.weixin.qq.com/wwlogin/sso/login?login_type=CorpApp&appid=ww01&agentid=1000002&redirect_uri=https%3A%2F%2Fhub.example.com%2Foidc%2Fcallback&state=abc"
	if got != want {
		t.Fatalf("WebURL =\n%s\nwant\n%s", got, want)
	}
}

func TestUser(t *testing.T) {
	s := idtest.Sim(t)
	l := idtest.Login(s)
	ctx := context.Background()
	code, _ := s.IssueOAuthCode("zhouba")
	if u, err := l.User(ctx, code); err != nil || u != "zhouba" {
		t.Fatalf("User = %q, %v", u, err)
	}
	// A code is good once.
	if _, err := l.User(ctx, code); !wecom.IsPermanent(err) {
		t.Fatalf("reused code: %v, want a permanent error", err)
	}
	// An expired cached token is replaced once.
	s.ExpireTokens()
	code, _ = s.IssueOAuthCode("lisi")
	if u, err := l.User(ctx, code); err != nil || u != "lisi" {
		t.Fatalf("after token expiry: %q, %v", u, err)
	}
	if _, err := l.User(ctx, ""); err == nil {
		t.Fatal("empty code accepted")
	}
	failing := l
	failing.Token = func(context.Context, string, bool) (string, error) { return "", errors.New("no token") }
	if _, err := failing.User(ctx, "x"); err == nil || !strings.Contains(err.Error(), "no token") {
		t.Fatalf("token failure: %v", err)
	}
	if !oauth.InWeCom("Mozilla/5.0 wxwork/4.1.0") || oauth.InWeCom("Mozilla/5.0 Chrome/120") {
		t.Fatal("InWeCom")
	}
}
