package wecom

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"
	json "github.com/goccy/go-json"
)

// DefaultBaseURL is WeCom's API server.
const DefaultBaseURL = "https://qyapi.weixin.qq.com"

// DefaultTimeout bounds one API call when the caller's context has no earlier deadline.
const DefaultTimeout = 10 * time.Second

// maxResponse bounds what is read of an answer; WeCom's JSON answers are small.
const maxResponse = 1 << 20

// Client calls the WeCom server API. It holds no token and no retry policy: the
// caller (the sender) owns both, using IsRetryable/IsTokenExpired/IsPermanent on
// the errors. Safe for concurrent use. It never logs; its errors never hold the
// access token or the secret.
type Client struct {
	http *resty.Client
}

// DefaultMaxIdleConnsPerHost is how many idle connections to the API host a
// client keeps for reuse: at least as many as calls in flight at once.
const DefaultMaxIdleConnsPerHost = 64

type clientConfig struct {
	timeout   time.Duration
	hc        *http.Client
	userAgent string
}

// ClientOption customizes a Client.
type ClientOption func(*clientConfig)

// WithTimeout bounds each call (default DefaultTimeout; 0 means no bound other than ctx).
func WithTimeout(d time.Duration) ClientOption { return func(c *clientConfig) { c.timeout = d } }

// WithHTTPClient uses hc's transport (proxies, TLS settings) instead of a new one.
func WithHTTPClient(hc *http.Client) ClientOption { return func(c *clientConfig) { c.hc = hc } }

// WithUserAgent sets the User-Agent header (default "wxhub").
func WithUserAgent(ua string) ClientOption { return func(c *clientConfig) { c.userAgent = ua } }

// NewClient returns a client of the WeCom API at baseURL (DefaultBaseURL when
// empty; the simulator's address in the demo and tests).
func NewClient(baseURL string, opts ...ClientOption) *Client {
	cfg := clientConfig{timeout: DefaultTimeout, userAgent: "wxhub"}
	for _, o := range opts {
		o(&cfg)
	}
	if baseURL == "" {
		baseURL = DefaultBaseURL
	}
	var r *resty.Client
	if cfg.hc != nil {
		r = resty.NewWithClient(cfg.hc)
	} else {
		r = resty.New()
		// resty's transport keeps GOMAXPROCS+1 idle connections per host and
		// every call goes to the one API host: keep enough for the sender's
		// workers, or most connections are closed after a call and dialled again.
		if tr, ok := r.GetClient().Transport.(*http.Transport); ok {
			tr.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
			tr.MaxIdleConns = max(tr.MaxIdleConns, DefaultMaxIdleConnsPerHost)
		}
	}
	r.SetBaseURL(strings.TrimRight(baseURL, "/")).
		SetTimeout(cfg.timeout).
		SetHeader("User-Agent", cfg.userAgent).
		SetRetryCount(0).           // retries are the caller's policy
		SetLogger(discardLogger{}). // resty's own logs could print URLs with the token
		SetDisableWarn(true)
	return &Client{http: r}
}

type discardLogger struct{}

func (discardLogger) Errorf(string, ...any) {}
func (discardLogger) Warnf(string, ...any)  {}
func (discardLogger) Debugf(string, ...any) {}

// status is the errcode/errmsg pair of every WeCom answer.
type status struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

func (s *status) get() *status { return s }

type answer interface{ get() *status }

// badResponse is an answer that is not WeCom's JSON.
type badResponse struct {
	op, detail string
}

func (e *badResponse) Error() string {
	return fmt.Sprintf("wecom: %s: unreadable response: %s", e.op, e.detail)
}

func (e *badResponse) Is(target error) bool {
	return target == ErrBadResponse || target == ErrRetryable
}

// call runs one request and decodes the answer into out; a non-zero errcode
// becomes *APIError, with out still filled (message/send reports invalid users
// beside some errcodes).
func (c *Client) call(ctx context.Context, op string, req *resty.Request, method, path string, out answer) error {
	req.SetContext(ctx).SetDoNotParseResponse(true)
	resp, err := req.Execute(method, path)
	if err != nil {
		return &TransportError{Op: op, Err: redactURLError(err)}
	}
	body := resp.RawBody()
	defer body.Close()
	raw, err := io.ReadAll(io.LimitReader(body, maxResponse))
	if err != nil {
		return &TransportError{Op: op, Err: redactURLError(err)}
	}
	if resp.StatusCode() != http.StatusOK {
		return &HTTPError{Op: op, Status: resp.StatusCode()}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return &badResponse{op: op, detail: err.Error()}
	}
	if st := out.get(); st.ErrCode != 0 {
		return &APIError{Code: st.ErrCode, Msg: st.ErrMsg, Op: op}
	}
	return nil
}

func (c *Client) postJSON(ctx context.Context, op, token string, body any, out answer) error {
	req := c.http.R().
		SetQueryParam("access_token", token).
		SetHeader("Content-Type", "application/json; charset=utf-8")
	switch b := body.(type) {
	case []byte:
		req.SetBody(b)
	case json.RawMessage:
		req.SetBody([]byte(b))
	default:
		// Marshalled here rather than by resty so that an unencodable body is a
		// clear permanent error, not a transport one.
		raw, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("wecom: %s: %w: encode body: %v", op, ErrPermanent, err)
		}
		req.SetBody(raw)
	}
	return c.call(ctx, op, req, http.MethodPost, "/cgi-bin/"+op, out)
}

type tokenAnswer struct {
	status
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

// GetToken asks for the access token of one app (corp id + that app's secret).
// WeCom returns the same token while it is valid. 40001 means a wrong secret:
// IsPermanent, and retrying in a loop gets the server's IP blocked.
func (c *Client) GetToken(ctx context.Context, corpID, secret string) (token string, expiresIn time.Duration, err error) {
	var a tokenAnswer
	req := c.http.R().SetQueryParams(map[string]string{"corpid": corpID, "corpsecret": secret})
	if err := c.call(ctx, "gettoken", req, http.MethodGet, "/cgi-bin/gettoken", &a); err != nil {
		return "", 0, err
	}
	if a.AccessToken == "" {
		return "", 0, &badResponse{op: "gettoken", detail: "no access_token in the answer"}
	}
	return a.AccessToken, time.Duration(a.ExpiresIn) * time.Second, nil
}

// SendResult is message/send's answer (also update_template_card's). A message
// can be accepted (errcode 0) while some recipients were not: see Invalid*, which
// hold "|"-separated ids whichever way WeCom spelt the list.
type SendResult struct {
	InvalidUser    string `json:"invaliduser,omitempty"`    // "a|b": unknown or out-of-range members
	InvalidParty   string `json:"invalidparty,omitempty"`   // "1|2"
	InvalidTag     string `json:"invalidtag,omitempty"`     // "1|2"
	UnlicensedUser string `json:"unlicenseduser,omitempty"` // members without an interop licence
	MsgID          string `json:"msgid,omitempty"`          // for message/recall
	// ResponseCode lets a template card with buttons be updated once, within 72 hours.
	ResponseCode string `json:"response_code,omitempty"`
}

type sendAnswer struct {
	status
	InvalidUser    pipeList `json:"invaliduser"`
	InvalidParty   pipeList `json:"invalidparty"`
	InvalidTag     pipeList `json:"invalidtag"`
	UnlicensedUser pipeList `json:"unlicenseduser"`
	MsgID          string   `json:"msgid"`
	ResponseCode   string   `json:"response_code"`
}

func (a *sendAnswer) result() SendResult {
	return SendResult{
		InvalidUser: string(a.InvalidUser), InvalidParty: string(a.InvalidParty),
		InvalidTag: string(a.InvalidTag), UnlicensedUser: string(a.UnlicensedUser),
		MsgID: a.MsgID, ResponseCode: a.ResponseCode,
	}
}

// pipeList reads WeCom's id lists, which message/send spells "a|b" and
// update_template_card spells ["a","b"] (department and tag ids may be numbers).
type pipeList string

func (p *pipeList) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*p = pipeList(s)
		return nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(b, &items); err != nil {
		return fmt.Errorf("id list: want a string or an array, got %.40s", b)
	}
	parts := make([]string, 0, len(items))
	for _, it := range items {
		var s string
		if json.Unmarshal(it, &s) != nil {
			var n json.Number
			if err := json.Unmarshal(it, &n); err != nil {
				return fmt.Errorf("id list: item %.40s is neither a string nor a number", it)
			}
			s = n.String()
		}
		parts = append(parts, s)
	}
	*p = pipeList(strings.Join(parts, "|"))
	return nil
}

// SendMessage calls message/send with body, WeCom's request body (a struct,
// map, []byte or json.RawMessage; agentid included). On an errcode the
// SendResult is still returned beside the *APIError (81013 names no one, but
// partial failures do).
func (c *Client) SendMessage(ctx context.Context, token string, body any) (SendResult, error) {
	var a sendAnswer
	err := c.postJSON(ctx, "message/send", token, body, &a)
	return a.result(), err
}

// UpdateTemplateCard calls message/update_template_card (body has userids or
// atall, agentid, response_code and the new card or button).
func (c *Client) UpdateTemplateCard(ctx context.Context, token string, body any) (SendResult, error) {
	var a sendAnswer
	err := c.postJSON(ctx, "message/update_template_card", token, body, &a)
	return a.result(), err
}

// SendAppChat calls appchat/send (body has chatid, msgtype and the content).
func (c *Client) SendAppChat(ctx context.Context, token string, body any) error {
	var a status
	return c.postJSON(ctx, "appchat/send", token, body, &a)
}

type chatAnswer struct {
	status
	ChatID string `json:"chatid"`
}

// CreateAppChat calls appchat/create (body has name, owner, userlist, chatid)
// and returns the chat's id.
func (c *Client) CreateAppChat(ctx context.Context, token string, body any) (chatID string, err error) {
	var a chatAnswer
	if err := c.postJSON(ctx, "appchat/create", token, body, &a); err != nil {
		return "", err
	}
	return a.ChatID, nil
}

type mediaAnswer struct {
	status
	Type      string          `json:"type"`
	MediaID   string          `json:"media_id"`
	CreatedAt json.RawMessage `json:"created_at"` // a string in WeCom's answers, a number in some proxies'
}

// UploadMedia uploads temporary media (valid 3 days) as the multipart field
// "media"; mediaType is image, voice, video or file.
func (c *Client) UploadMedia(ctx context.Context, token, mediaType, filename string, r io.Reader) (mediaID string, err error) {
	var a mediaAnswer
	req := c.http.R().
		SetQueryParams(map[string]string{"access_token": token, "type": mediaType}).
		SetFileReader("media", filename, r)
	if err := c.call(ctx, "media/upload", req, http.MethodPost, "/cgi-bin/media/upload", &a); err != nil {
		return "", err
	}
	if a.MediaID == "" {
		return "", &badResponse{op: "media/upload", detail: "no media_id in the answer"}
	}
	return a.MediaID, nil
}

// UserInfo is who an OAuth code belongs to: a member (UserID, and UserTicket
// when the scope asked for details) or a non-member (OpenID, ExternalUserID).
type UserInfo struct {
	UserID         string `json:"userid,omitempty"`
	UserTicket     string `json:"user_ticket,omitempty"`
	OpenID         string `json:"openid,omitempty"`
	ExternalUserID string `json:"external_userid,omitempty"`
}

type userAnswer struct {
	status
	// encoding/json matches keys case-insensitively, so the older
	// user/getuserinfo spelling (UserId, OpenId) is read too.
	UserInfo
}

// GetUserInfo resolves an OAuth2 / web-login code (auth/getuserinfo). A code is
// good for one use within 5 minutes; a bad one answers 40029 (IsPermanent).
func (c *Client) GetUserInfo(ctx context.Context, token, code string) (UserInfo, error) {
	var a userAnswer
	req := c.http.R().SetQueryParams(map[string]string{"access_token": token, "code": code})
	if err := c.call(ctx, "auth/getuserinfo", req, http.MethodGet, "/cgi-bin/auth/getuserinfo", &a); err != nil {
		return UserInfo{}, err
	}
	u := a.UserInfo
	if u.UserID == "" && u.OpenID == "" && u.ExternalUserID == "" {
		return UserInfo{}, &badResponse{op: "auth/getuserinfo", detail: "neither userid nor openid in the answer"}
	}
	return u, nil
}

// RawAnswer is WeCom's answer to a call made with Do: the HTTP status, the
// content type and the body as it came, and the errcode when the body is
// WeCom's JSON (0 otherwise).
type RawAnswer struct {
	Status      int
	ContentType string
	Body        []byte
	ErrCode     int
}

// Do calls any WeCom API (api is the path under /cgi-bin/, e.g. "user/get")
// with token and the other query parameters, and returns the answer as it
// came: the pass-through for APIs the hub has no method for. Only a failed
// transport is an error.
func (c *Client) Do(ctx context.Context, method, api, token string, query url.Values, contentType string, body []byte) (RawAnswer, error) {
	req := c.http.R().SetContext(ctx).SetDoNotParseResponse(true)
	for k, vs := range query {
		for _, v := range vs {
			req.QueryParam.Add(k, v)
		}
	}
	req.SetQueryParam("access_token", token)
	if body != nil {
		req.SetBody(body)
		if contentType != "" {
			req.SetHeader("Content-Type", contentType)
		}
	}
	resp, err := req.Execute(method, "/cgi-bin/"+api)
	if err != nil {
		return RawAnswer{}, &TransportError{Op: api, Err: redactURLError(err)}
	}
	rb := resp.RawBody()
	defer rb.Close()
	raw, err := io.ReadAll(io.LimitReader(rb, maxResponse+1))
	if err != nil {
		return RawAnswer{}, &TransportError{Op: api, Err: redactURLError(err)}
	}
	if len(raw) > maxResponse {
		return RawAnswer{}, &badResponse{op: api, detail: fmt.Sprintf("answer over %d bytes", maxResponse)}
	}
	a := RawAnswer{Status: resp.StatusCode(), ContentType: resp.Header().Get("Content-Type"), Body: raw}
	var st status
	if json.Unmarshal(raw, &st) == nil {
		a.ErrCode = st.ErrCode
	}
	return a, nil
}

// Meeting is what meeting/create takes (WeCom's field names).
type Meeting struct {
	AdminUserID     string `json:"admin_userid"`
	Title           string `json:"title"`
	MeetingStart    int64  `json:"meeting_start"`    // unix seconds
	MeetingDuration int64  `json:"meeting_duration"` // seconds, 300 to 86400
	Description     string `json:"description,omitempty"`
	AgentID         int64  `json:"agentid,omitempty"`
	Invitees        struct {
		UserID []string `json:"userid"`
	} `json:"invitees"`
}

type meetingAnswer struct {
	status
	MeetingID   string   `json:"meetingid"`
	ExcessUsers []string `json:"excess_users"`
	MeetingCode string   `json:"meeting_code"`
	MeetingLink string   `json:"meeting_link"`
}

// CreateMeeting calls meeting/create and returns the meeting's id.
func (c *Client) CreateMeeting(ctx context.Context, token string, m Meeting) (meetingID string, err error) {
	var a meetingAnswer
	if err := c.postJSON(ctx, "meeting/create", token, m, &a); err != nil {
		return "", err
	}
	if a.MeetingID == "" {
		return "", &badResponse{op: "meeting/create", detail: "no meetingid in the answer"}
	}
	return a.MeetingID, nil
}

// MeetingLink calls meeting/get_info and returns the meeting's join link and code.
func (c *Client) MeetingLink(ctx context.Context, token, meetingID string) (link, code string, err error) {
	var a meetingAnswer
	if err := c.postJSON(ctx, "meeting/get_info", token, map[string]string{"meetingid": meetingID}, &a); err != nil {
		return "", "", err
	}
	return a.MeetingLink, a.MeetingCode, nil
}
