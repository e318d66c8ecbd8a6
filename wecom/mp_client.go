package wecom

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// DefaultMPBaseURL is the WeChat Official Account (服务号) API server.
const DefaultMPBaseURL = "https://api.weixin.qq.com"

// Official Account API names, as MPError.Op and the simulator's Stats.Calls spell them.
const (
	MPOpToken    = "token"                 // GET /cgi-bin/token
	MPOpCustom   = "message/custom/send"   // POST /cgi-bin/message/custom/send (客服消息)
	MPOpTemplate = "message/template/send" // POST /cgi-bin/message/template/send (模板消息)
)

// MPClient calls the Official Account API (api.weixin.qq.com): access tokens,
// customer-service messages and template messages. Like Client it holds no token
// and no retry policy, never logs, and its errors never hold the token or the
// AppSecret. Safe for concurrent use.
//
// Official Account error codes overlap WeCom's but do not always mean the same:
// 40001 on /cgi-bin/token is a wrong AppSecret, on a send it is a token that is
// invalid or no longer the latest. Failed calls therefore return *MPError, whose
// class depends on the API; errors.As to *APIError still works for the code.
type MPClient struct {
	c *Client
}

// NewMPClient returns a client of the Official Account API at baseURL
// (DefaultMPBaseURL when empty; the simulator's address in the demo and tests).
func NewMPClient(baseURL string, opts ...ClientOption) *MPClient {
	if baseURL == "" {
		baseURL = DefaultMPBaseURL
	}
	return &MPClient{c: NewClient(baseURL, opts...)}
}

// GetToken asks for the account's access token (grant_type=client_credential).
// Unlike WeCom's gettoken, every call issues a new token; the previous one stays
// valid for 5 minutes only, so callers must share one token (the sender does,
// through its KV bucket). 40001/40125 (AppSecret), 40013 (AppID) and 40164 (IP
// not whitelisted) are permanent: retrying in a loop gets the IP blocked.
func (m *MPClient) GetToken(ctx context.Context, appID, secret string) (token string, expiresIn time.Duration, err error) {
	var a tokenAnswer
	req := m.c.http.R().SetQueryParams(map[string]string{"grant_type": "client_credential", "appid": appID, "secret": secret})
	if err := m.c.call(ctx, MPOpToken, req, http.MethodGet, "/cgi-bin/token", &a); err != nil {
		return "", 0, mpError(err)
	}
	if a.AccessToken == "" {
		return "", 0, &badResponse{op: MPOpToken, detail: "no access_token in the answer"}
	}
	return a.AccessToken, time.Duration(a.ExpiresIn) * time.Second, nil
}

// SendCustom sends a customer-service message (客服消息): body is WeChat's own
// request body ({"touser": openid, "msgtype": "text", "text": {"content": ...}};
// also image, voice, video, music, news with one article, mpnews, msgmenu,
// miniprogrampage, ...) as a struct, map, []byte or json.RawMessage. WeChat
// accepts it only within 48 hours of the user's last interaction (45015) and
// caps the messages per interaction (45047); both are permanent.
func (m *MPClient) SendCustom(ctx context.Context, token string, body any) error {
	var a status
	return mpError(m.c.postJSON(ctx, MPOpCustom, token, body, &a))
}

type templateAnswer struct {
	status
	MsgID jsonNumberString `json:"msgid"`
}

// SendTemplate sends a template message (模板消息), allowed at any time to a
// follower: body has touser, template_id, data and optionally url, miniprogram,
// client_msg_id. It returns WeChat's msgid (a number, as a string).
func (m *MPClient) SendTemplate(ctx context.Context, token string, body any) (msgID string, err error) {
	var a templateAnswer
	if err := m.c.postJSON(ctx, MPOpTemplate, token, body, &a); err != nil {
		return "", mpError(err)
	}
	return string(a.MsgID), nil
}

// jsonNumberString reads an id WeChat sends as a number (or, from some proxies, a string).
type jsonNumberString string

func (s *jsonNumberString) UnmarshalJSON(b []byte) error {
	v := string(b)
	if v == "null" {
		return nil
	}
	if len(v) >= 2 && v[0] == '"' {
		uq, err := strconv.Unquote(v)
		if err != nil {
			return err
		}
		*s = jsonNumberString(uq)
		return nil
	}
	if _, err := strconv.ParseFloat(v, 64); err != nil {
		return fmt.Errorf("msgid: want a number, got %.40s", v)
	}
	*s = jsonNumberString(v)
	return nil
}

// mpCodes are the Official Account codes whose meaning (or operator's advice)
// differs from WeCom's table; other codes fall back to it. Keyed by code; the
// per-API exceptions are in mpClassOf.
var mpCodes = map[int]codeInfo{
	40001: {ClassPermanent, "invalid AppSecret, or the AppSecret was reset: check mp.accounts[].secret (WeChat blocks an IP that keeps retrying)"},
	40002: {ClassPermanent, "invalid grant_type"},
	40003: {ClassPermanent, "invalid openid: not a follower of this account (openids differ per account)"},
	40013: {ClassPermanent, "invalid AppID: check mp.accounts[].app_id"},
	40037: {ClassPermanent, "invalid template_id: the template is not in the account's template library"},
	40125: {ClassPermanent, "invalid AppSecret: check mp.accounts[].secret (WeChat blocks an IP that keeps retrying)"},
	40164: {ClassPermanent, "this server's IP is not on the account's IP whitelist: add it in the Official Account platform (Settings and Development > Basic configuration > IP whitelist)"},
	41002: {ClassPermanent, "appid missing"},
	41004: {ClassPermanent, "AppSecret missing"},
	43004: {ClassPermanent, "the user does not follow the account (or unfollowed it)"},
	45008: {ClassPermanent, "a news customer-service message carries at most 1 article"},
	45009: {ClassRetry, "the account's daily API quota is used up; it resets at midnight (UTC+8)"},
	45015: {ClassPermanent, "outside WeChat's 48-hour customer-service window; use a template message"},
	45047: {ClassPermanent, "out of response count limit: WeChat allows only a few customer-service messages per user interaction"},
	47003: {ClassPermanent, "template data invalid: a data field is missing or empty"},
	48001: {ClassPermanent, "API unauthorized: the account lacks this permission (customer-service and template messages need a verified service account)"},
}

// mpTokenInvalidText: on a send, 40001 means the token is invalid or was replaced by
// a newer one ("access_token is invalid or not latest"), not a wrong secret.
const mpTokenInvalidText = "access_token invalid or not the latest (a newer one was fetched): refresh the token"

// MPClassOf classifies an Official Account errcode answered by the API op
// (MPOpToken, MPOpCustom, ...).
func MPClassOf(op string, code int) Class {
	if code == 40001 && op != MPOpToken {
		return ClassRefresh
	}
	if info, ok := mpCodes[code]; ok {
		return info.class
	}
	return ClassOf(code)
}

// MPDescribe is an operator's message for an Official Account errcode ("" for unknown codes).
func MPDescribe(op string, code int) string {
	if code == 40001 && op != MPOpToken {
		return mpTokenInvalidText
	}
	if info, ok := mpCodes[code]; ok {
		return info.text
	}
	return Describe(code)
}

// MPError is a non-zero errcode in an Official Account answer.
type MPError struct {
	Code int    // errcode
	Msg  string // errmsg as WeChat sent it
	Op   string // the API, e.g. MPOpCustom
}

func (e *MPError) Error() string {
	if d := MPDescribe(e.Op, e.Code); d != "" {
		return fmt.Sprintf("wechat mp: %s: errcode %d: %s (errmsg: %s)", e.Op, e.Code, d, e.Msg)
	}
	return fmt.Sprintf("wechat mp: %s: errcode %d: %s", e.Op, e.Code, e.Msg)
}

// Class is MPClassOf(e.Op, e.Code).
func (e *MPError) Class() Class { return MPClassOf(e.Op, e.Code) }

// Is matches the class sentinels (by API and code) and another *MPError or
// *APIError with the same Code.
func (e *MPError) Is(target error) bool {
	switch t := target.(type) {
	case *MPError:
		return t.Code == e.Code
	case *APIError:
		return t.Code == e.Code
	}
	return target == e.Class().sentinel()
}

// As lets code that reads WeCom errcodes (errors.As(err, &*APIError)) read an
// Official Account errcode too.
func (e *MPError) As(target any) bool {
	if p, ok := target.(**APIError); ok {
		*p = &APIError{Code: e.Code, Msg: e.Msg, Op: e.Op}
		return true
	}
	return false
}

// mpError turns the shared call path's errors into the Official Account's: an
// *APIError becomes an *MPError.
func mpError(err error) error {
	if err == nil {
		return nil
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return &MPError{Code: ae.Code, Msg: ae.Msg, Op: ae.Op}
	}
	return err
}

// MPOpMedia is GET /cgi-bin/media/get of an Official Account (temporary media).
const MPOpMedia = "media/get"

// GetMedia downloads an account's temporary medium (a customer's image, voice
// or video): the same API shape as WeCom's media/get, with the account's token.
func (m *MPClient) GetMedia(ctx context.Context, token, mediaID string) (Media, error) {
	return m.c.GetMedia(ctx, token, mediaID)
}
