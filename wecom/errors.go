package wecom

import (
	"context"
	"errors"
	"fmt"
	"net/url"
)

// Classes of API failure. Every error the Client returns matches (errors.Is) at
// most one of them; IsRetryable, IsTokenExpired and IsPermanent are shorthands.
var (
	// ErrRetryable: WeCom is busy or limiting us, or the network failed; back off
	// and send the same request again.
	ErrRetryable = errors.New("wecom: retryable failure")
	// ErrTokenExpired: the access token is invalid or expired; refresh it once and retry.
	ErrTokenExpired = errors.New("wecom: access token invalid or expired")
	// ErrPermanent: the request (or the app's setup) is wrong; retrying repeats the
	// rejection, and on gettoken a retry loop gets the server's IP blocked.
	ErrPermanent = errors.New("wecom: permanent failure")
	// ErrBadResponse: the answer was not WeCom's JSON (a proxy page, a cut body).
	// It is retryable.
	ErrBadResponse = errors.New("wecom: unreadable response")
)

// Class is what a caller should do about a failed call.
type Class int

// The classes of WeCom error codes.
const (
	ClassPermanent Class = iota // fix the request or the configuration; do not retry
	ClassRetry                  // back off and retry
	ClassRefresh                // refresh the access token once, then retry
)

func (c Class) String() string {
	switch c {
	case ClassRetry:
		return "retry"
	case ClassRefresh:
		return "refresh"
	default:
		return "permanent"
	}
}

func (c Class) sentinel() error {
	switch c {
	case ClassRetry:
		return ErrRetryable
	case ClassRefresh:
		return ErrTokenExpired
	default:
		return ErrPermanent
	}
}

type codeInfo struct {
	class Class
	text  string
}

// codes is the table of WeCom error codes wxhub knows, with a message an operator
// can act on. docs/protocol.md lists the same table.
var codes = map[int]codeInfo{
	-1:     {ClassRetry, "WeCom is busy; retry later"},
	40001:  {ClassPermanent, "invalid secret: check the app's secret in the configuration (WeCom blocks an IP that keeps retrying)"},
	40003:  {ClassPermanent, "invalid userid: no such member in the corp"},
	40004:  {ClassPermanent, "invalid media file type"},
	40005:  {ClassPermanent, "invalid media type parameter (image, voice, video or file)"},
	40006:  {ClassPermanent, "invalid media file size"},
	40007:  {ClassPermanent, "invalid media_id: unknown or expired (temporary media live 3 days)"},
	40008:  {ClassPermanent, "invalid msgtype"},
	40013:  {ClassPermanent, "invalid corp id: check wecom.corp_id in the configuration"},
	40014:  {ClassRefresh, "invalid access_token: refresh the token"},
	40029:  {ClassPermanent, "invalid or expired OAuth code: a code is good for one use within 5 minutes"},
	40031:  {ClassPermanent, "invalid userid list"},
	40056:  {ClassPermanent, "invalid agentid: check the app's agent_id in the configuration"},
	40058:  {ClassPermanent, "invalid parameter: the request body does not match the API"},
	40068:  {ClassPermanent, "invalid tagid"},
	41001:  {ClassRefresh, "access_token missing: get a token first"},
	41004:  {ClassPermanent, "corpsecret missing"},
	41008:  {ClassPermanent, "OAuth code missing"},
	42001:  {ClassRefresh, "access_token expired: refresh the token"},
	44004:  {ClassPermanent, "empty text content"},
	45002:  {ClassPermanent, "message content too long"},
	45009:  {ClassRetry, "API call frequency limit reached; back off and retry"},
	45011:  {ClassRetry, "API called too often; back off and retry"},
	45033:  {ClassRetry, "too many concurrent API calls; back off and retry"},
	47001:  {ClassPermanent, "malformed request body (not the JSON the API expects)"},
	48002:  {ClassPermanent, "API forbidden: the app has no permission for this API"},
	60011:  {ClassPermanent, "no permission for the given member, department or tag (outside the app's visible range)"},
	60020:  {ClassPermanent, "this server's IP is not on the app's trusted IP list: add it in the WeCom admin console (app settings, trusted IPs)"},
	60003:  {ClassPermanent, "department not found"},
	60111:  {ClassPermanent, "userid not found"},
	60123:  {ClassPermanent, "invalid department id"},
	81013:  {ClassPermanent, "every userid, department and tag is invalid or outside the app's visible range: nobody received the message"},
	82001:  {ClassPermanent, "no recipient: touser, toparty and totag are all empty or invalid"},
	86001:  {ClassPermanent, "invalid chatid"},
	86003:  {ClassPermanent, "group chat not found"},
	86008:  {ClassPermanent, "the group chat was created by another app"},
	301002: {ClassPermanent, "the access token's app is not the app named by agentid: use the token of the same app"},
}

// ClassOf classifies a WeCom errcode. Codes not in the table are permanent: WeCom
// rejected the request for a reason retrying will not change.
func ClassOf(code int) Class {
	if info, ok := codes[code]; ok {
		return info.class
	}
	return ClassPermanent
}

// Describe is an operator's message for a WeCom errcode ("" for unknown codes).
func Describe(code int) string { return codes[code].text }

// APIError is a non-zero errcode in a WeCom answer.
type APIError struct {
	Code int    // errcode
	Msg  string // errmsg as WeCom sent it
	Op   string // the API, e.g. "message/send"
}

func (e *APIError) Error() string {
	if d := Describe(e.Code); d != "" {
		return fmt.Sprintf("wecom: %s: errcode %d: %s (errmsg: %s)", e.Op, e.Code, d, e.Msg)
	}
	return fmt.Sprintf("wecom: %s: errcode %d: %s", e.Op, e.Code, e.Msg)
}

// Is matches the class sentinels (ErrRetryable, ErrTokenExpired, ErrPermanent)
// and another *APIError with the same Code.
func (e *APIError) Is(target error) bool {
	if t, ok := target.(*APIError); ok {
		return t.Code == e.Code
	}
	return target == ClassOf(e.Code).sentinel()
}

// Class is ClassOf(e.Code).
func (e *APIError) Class() Class { return ClassOf(e.Code) }

// HTTPError is an HTTP status other than 200 from the API (WeCom itself answers
// 200 with an errcode; other statuses come from proxies and load balancers).
type HTTPError struct {
	Op     string
	Status int
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("wecom: %s: HTTP status %d", e.Op, e.Status)
}

// Is classifies 5xx and 429 as retryable, the rest as permanent.
func (e *HTTPError) Is(target error) bool {
	if e.Status >= 500 || e.Status == 429 {
		return target == ErrRetryable
	}
	return target == ErrPermanent
}

// TransportError is a failed HTTP exchange (DNS, connect, TLS, timeout). Its
// message never holds the access token or secret: the URL's query is redacted.
type TransportError struct {
	Op  string
	Err error
}

func (e *TransportError) Error() string { return fmt.Sprintf("wecom: %s: %v", e.Op, e.Err) }
func (e *TransportError) Unwrap() error { return e.Err }

// Is makes network failures retryable, except when the caller's context was
// cancelled: nobody is waiting for that answer any more.
func (e *TransportError) Is(target error) bool {
	return target == ErrRetryable && !errors.Is(e.Err, context.Canceled)
}

// IsRetryable reports a failure worth retrying after a back-off: -1, 45009, 45011,
// 45033, network errors, HTTP 5xx/429 and unreadable answers.
func IsRetryable(err error) bool { return errors.Is(err, ErrRetryable) }

// IsTokenExpired reports 40014, 41001 or 42001: refresh the token once and retry.
func IsTokenExpired(err error) bool { return errors.Is(err, ErrTokenExpired) }

// IsPermanent reports a rejection that retrying will not change: 40001, 60020,
// 81013, 40003, 40056, 301002, other known and unknown errcodes, HTTP 4xx.
func IsPermanent(err error) bool { return errors.Is(err, ErrPermanent) }

// redactURLError replaces the secrets in the query of a *url.Error's URL (the
// access_token, WeCom's corpsecret, an Official Account's AppSecret "secret",
// an OAuth code), so that the error can be logged.
func redactURLError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	u, perr := url.Parse(ue.URL)
	if perr != nil {
		return &url.Error{Op: ue.Op, URL: "(unparsable URL)", Err: ue.Err}
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "access_token", "corpsecret", "secret", "code":
			q.Set(k, "REDACTED")
		}
	}
	u.RawQuery = q.Encode()
	return &url.Error{Op: ue.Op, URL: u.String(), Err: ue.Err}
}
