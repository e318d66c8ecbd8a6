// Package oauth is the WeCom OAuth2 half shared by the OIDC provider and
// the PIN pages: the authorize URL that sends a browser inside the WeCom app
// through WeCom, and the exchange of the returned code for the member's userid
// (auth/getuserinfo with the app's access token).
package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/wxhub/wxhub/wecom"
)

// TokenSource returns the app's access token; fresh asks for a new one after
// WeCom called the last one expired. The hub passes the gateway's source (the
// shared token in wxhub_tokens, else gettoken).
type TokenSource func(ctx context.Context, app string, fresh bool) (string, error)

// ErrNotMember: the code belongs to someone outside the corp (an openid).
var ErrNotMember = errors.New("wecom/oauth: the OAuth user is not a member of the corp")

// DefaultAuthorizeURL is WeCom's OAuth2 page for browsers inside WeCom.
const DefaultAuthorizeURL = "https://open.weixin.qq.com/connect/oauth2/authorize"

// DefaultWebLoginURL is WeCom's web login (企业微信扫码登录) for desktop browsers.
const DefaultWebLoginURL = "https://login.work.weixin.qq.com/wwlogin/sso/login"

// Login resolves WeCom OAuth2 logins of one app. The zero value is unusable:
// set every field but AuthorizeURL.
type Login struct {
	// AuthorizeURL: default DefaultAuthorizeURL; the simulator's
	// /connect/oauth2/authorize in the demo and tests.
	AuthorizeURL string
	// WebLoginURL: default DefaultWebLoginURL; the simulator's
	// /wwlogin/sso/login in the demo and tests.
	WebLoginURL string
	CorpID      string
	AgentID     int64
	// App is the app's name (the TokenSource's key).
	App    string
	Token  TokenSource
	Client *wecom.Client
}

// URL is the authorize address that returns to redirectURI with ?code=&state=.
// WeCom requires this parameter order and the #wechat_redirect fragment.
func (l Login) URL(redirectURI, state string) string {
	base := l.AuthorizeURL
	if base == "" {
		base = DefaultAuthorizeURL
	}
	return base + "?appid=" + url.QueryEscape(l.CorpID) + "&redirect_uri=" + url.QueryEscape(redirectURI) +
		"&response_type=code&scope=snsapi_base&state=" + url.QueryEscape(state) +
		"&agentid=" + strconv.FormatInt(l.AgentID, 10) + "#wechat_redirect"
}

// WebURL is the web login (scan with the WeCom app on a desktop) that returns
// to redirectURI with ?code=&state= like OAuth (only ?state= when refused);
// the code is exchanged by User the same way.
func (l Login) WebURL(redirectURI, state string) string {
	base := l.WebLoginURL
	if base == "" {
		base = DefaultWebLoginURL
	}
	return base + "?login_type=CorpApp&appid=" + url.QueryEscape(l.CorpID) + "&agentid=" + strconv.FormatInt(l.AgentID, 10) +
		"&redirect_uri=" + url.QueryEscape(redirectURI) + "&state=" + url.QueryEscape(state)
}

// User exchanges a code for the member's userid; a token WeCom calls expired
// is fetched anew once. wecom.IsPermanent(err) means a bad or used code.
func (l Login) User(ctx context.Context, code string) (string, error) {
	if code == "" {
		return "", fmt.Errorf("wecom/oauth: no code")
	}
	tok, err := l.Token(ctx, l.App, false)
	if err != nil {
		return "", fmt.Errorf("wecom/oauth: token of %s: %w", l.App, err)
	}
	u, err := l.Client.GetUserInfo(ctx, tok, code)
	if wecom.IsTokenExpired(err) {
		if tok, err = l.Token(ctx, l.App, true); err != nil {
			return "", fmt.Errorf("wecom/oauth: token of %s: %w", l.App, err)
		}
		u, err = l.Client.GetUserInfo(ctx, tok, code)
	}
	if err != nil {
		return "", fmt.Errorf("wecom/oauth: auth/getuserinfo: %w", err)
	}
	if u.UserID == "" {
		return "", ErrNotMember
	}
	return u.UserID, nil
}

// InWeCom reports whether a request comes from the WeCom app's built-in
// browser (its User-Agent carries "wxwork").
func InWeCom(userAgent string) bool { return strings.Contains(strings.ToLower(userAgent), "wxwork") }
