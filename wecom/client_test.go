package wecom

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeWeCom answers every path with the configured status and body, WeCom-style,
// and records the last request.
type fakeWeCom struct {
	status int
	answer string

	method, path string
	query        map[string]string
	contentType  string
	body         []byte
	// multipart upload
	field, filename, fileData string
}

func (f *fakeWeCom) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.method, f.path = r.Method, r.URL.Path
	f.query = map[string]string{}
	for k := range r.URL.Query() {
		f.query[k] = r.URL.Query().Get(k)
	}
	f.contentType = r.Header.Get("Content-Type")
	if strings.HasPrefix(f.contentType, "multipart/") {
		if err := r.ParseMultipartForm(1 << 20); err == nil {
			for name, files := range r.MultipartForm.File {
				f.field, f.filename = name, files[0].Filename
				fh, _ := files[0].Open()
				data, _ := io.ReadAll(fh)
				f.fileData = string(data)
			}
		}
	} else {
		f.body, _ = io.ReadAll(r.Body)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	if f.status != 0 {
		w.WriteHeader(f.status)
	}
	_, _ = io.WriteString(w, f.answer)
}

func newFake(t *testing.T) (*fakeWeCom, *Client) {
	t.Helper()
	f := &fakeWeCom{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, NewClient(srv.URL+"/", WithTimeout(5*time.Second))
}

const secretToken = "SECRET-TOKEN-abc123"

// checkErr asserts the error's class and that it leaks no token or secret.
func checkErr(t *testing.T, err error, wantErr error, wantCode int) {
	t.Helper()
	if wantErr == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if !errors.Is(err, wantErr) {
		t.Fatalf("err = %v, want %v", err, wantErr)
	}
	if wantCode != 0 {
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != wantCode {
			t.Fatalf("err = %#v, want APIError %d", err, wantCode)
		}
	}
	if strings.Contains(err.Error(), secretToken) {
		t.Fatalf("error leaks the token or secret: %v", err)
	}
	n := 0
	for _, is := range []bool{IsRetryable(err), IsTokenExpired(err), IsPermanent(err)} {
		if is {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("err %v is in %d classes, want exactly 1", err, n)
	}
}

func TestGetToken(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		answer   string
		want     string
		wantTTL  time.Duration
		wantErr  error
		wantCode int
		wantMsg  string
	}{
		{name: "ok", answer: `{"errcode":0,"errmsg":"ok","access_token":"tok-1","expires_in":7200}`, want: "tok-1", wantTTL: 2 * time.Hour},
		{name: "wrong secret", answer: `{"errcode":40001,"errmsg":"invalid credential, hint: [1]"}`, wantErr: ErrPermanent, wantCode: 40001, wantMsg: "invalid secret"},
		{name: "ip not trusted", answer: `{"errcode":60020,"errmsg":"not allow to access from your ip, from ip: 1.2.3.4"}`, wantErr: ErrPermanent, wantCode: 60020, wantMsg: "IP is not on the app's trusted IP list"},
		{name: "invalid corp id", answer: `{"errcode":40013,"errmsg":"invalid corpid"}`, wantErr: ErrPermanent, wantCode: 40013},
		{name: "busy", answer: `{"errcode":-1,"errmsg":"system busy"}`, wantErr: ErrRetryable, wantCode: -1},
		{name: "no token in answer", answer: `{"errcode":0,"errmsg":"ok"}`, wantErr: ErrBadResponse},
		{name: "not json", answer: `<html>bad gateway</html>`, wantErr: ErrRetryable},
		{name: "http 502", status: 502, answer: `oops`, wantErr: ErrRetryable},
		{name: "http 429", status: 429, answer: ``, wantErr: ErrRetryable},
		{name: "http 404", status: 404, answer: `not found`, wantErr: ErrPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t)
			f.status, f.answer = tt.status, tt.answer
			got, ttl, err := c.GetToken(context.Background(), "ww0123456789abcdef", secretToken)
			checkErr(t, err, tt.wantErr, tt.wantCode)
			if err != nil && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %v, want it to say %q", err, tt.wantMsg)
			}
			if got != tt.want || ttl != tt.wantTTL {
				t.Errorf("GetToken = %q, %v; want %q, %v", got, ttl, tt.want, tt.wantTTL)
			}
			if f.method != http.MethodGet || f.path != "/cgi-bin/gettoken" ||
				f.query["corpid"] != "ww0123456789abcdef" || f.query["corpsecret"] != secretToken {
				t.Errorf("request %s %s %v", f.method, f.path, f.query)
			}
		})
	}
}

func TestSendMessage(t *testing.T) {
	type textBody struct {
		ToUser  string            `json:"touser"`
		MsgType string            `json:"msgtype"`
		AgentID int64             `json:"agentid"`
		Text    map[string]string `json:"text"`
	}
	const wantBody = `{"touser":"zhangsan","msgtype":"text","agentid":1000002,"text":{"content":"hi"}}`
	tests := []struct {
		name     string
		body     any
		answer   string
		want     SendResult
		wantErr  error
		wantCode int
	}{
		{name: "struct body", body: textBody{"zhangsan", "text", 1000002, map[string]string{"content": "hi"}},
			answer: `{"errcode":0,"errmsg":"ok","invaliduser":"","invalidparty":"","invalidtag":"","unlicenseduser":"","msgid":"xxxx","response_code":"xyzxyz"}`,
			want:   SendResult{MsgID: "xxxx", ResponseCode: "xyzxyz"}},
		{name: "raw body", body: json.RawMessage(wantBody), answer: `{"errcode":0,"errmsg":"ok","msgid":"m2"}`, want: SendResult{MsgID: "m2"}},
		{name: "bytes body", body: []byte(wantBody), answer: `{"errcode":0,"errmsg":"ok","msgid":"m3"}`, want: SendResult{MsgID: "m3"}},
		{name: "partly invalid recipients", body: []byte(wantBody),
			answer: `{"errcode":0,"errmsg":"ok","invaliduser":"lisi|wangwu","invalidparty":"3","invalidtag":"7","unlicenseduser":"zhaoliu","msgid":"m4"}`,
			want:   SendResult{InvalidUser: "lisi|wangwu", InvalidParty: "3", InvalidTag: "7", UnlicensedUser: "zhaoliu", MsgID: "m4"}},
		{name: "party and tag ids as numbers", body: []byte(wantBody),
			answer: `{"errcode":0,"errmsg":"ok","invalidparty":[3,4],"invalidtag":["7"],"msgid":"m5"}`,
			want:   SendResult{InvalidParty: "3|4", InvalidTag: "7", MsgID: "m5"}},
		{name: "nobody valid", body: []byte(wantBody), answer: `{"errcode":81013,"errmsg":"user & party & tag all invalid","invaliduser":"zhangsan"}`,
			want: SendResult{InvalidUser: "zhangsan"}, wantErr: ErrPermanent, wantCode: 81013},
		{name: "token expired", body: []byte(wantBody), answer: `{"errcode":42001,"errmsg":"access_token expired"}`, wantErr: ErrTokenExpired, wantCode: 42001},
		{name: "token invalid", body: []byte(wantBody), answer: `{"errcode":40014,"errmsg":"invalid access_token"}`, wantErr: ErrTokenExpired, wantCode: 40014},
		{name: "frequency limit", body: []byte(wantBody), answer: `{"errcode":45009,"errmsg":"api freq out of limit"}`, wantErr: ErrRetryable, wantCode: 45009},
		{name: "concurrency limit", body: []byte(wantBody), answer: `{"errcode":45033,"errmsg":"api concurrent out of limit"}`, wantErr: ErrRetryable, wantCode: 45033},
		{name: "invalid agentid", body: []byte(wantBody), answer: `{"errcode":40056,"errmsg":"invalid agentid"}`, wantErr: ErrPermanent, wantCode: 40056},
		{name: "another app's token", body: []byte(wantBody), answer: `{"errcode":301002,"errmsg":"not allow operate another agent with this accesstoken."}`, wantErr: ErrPermanent, wantCode: 301002},
		{name: "unknown code is permanent", body: []byte(wantBody), answer: `{"errcode":99999,"errmsg":"new"}`, wantErr: ErrPermanent, wantCode: 99999},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t)
			f.answer = tt.answer
			got, err := c.SendMessage(context.Background(), secretToken, tt.body)
			checkErr(t, err, tt.wantErr, tt.wantCode)
			if got != tt.want {
				t.Errorf("SendResult = %+v, want %+v", got, tt.want)
			}
			if f.method != http.MethodPost || f.path != "/cgi-bin/message/send" || f.query["access_token"] != secretToken {
				t.Errorf("request %s %s %v", f.method, f.path, f.query)
			}
			if !strings.HasPrefix(f.contentType, "application/json") || string(f.body) != wantBody {
				t.Errorf("body (%s) = %s, want %s", f.contentType, f.body, wantBody)
			}
		})
	}
}

func TestSendMessageUnencodableBody(t *testing.T) {
	f, c := newFake(t)
	_, err := c.SendMessage(context.Background(), secretToken, map[string]any{"x": make(chan int)})
	checkErr(t, err, ErrPermanent, 0)
	if f.path != "" {
		t.Errorf("a request was sent: %s", f.path)
	}
}

func TestAppChatAndCard(t *testing.T) {
	tests := []struct {
		name     string
		call     func(c *Client) (string, error)
		answer   string
		wantPath string
		want     string
		wantErr  error
		wantCode int
	}{
		{
			name: "create chat",
			call: func(c *Client) (string, error) {
				return c.CreateAppChat(context.Background(), secretToken, map[string]any{"name": "g"})
			},
			answer:   `{"errcode":0,"errmsg":"ok","chatid":"CHATID"}`,
			wantPath: "/cgi-bin/appchat/create", want: "CHATID",
		},
		{
			name: "create chat with bad owner",
			call: func(c *Client) (string, error) {
				return c.CreateAppChat(context.Background(), secretToken, map[string]any{"name": "g"})
			},
			answer:   `{"errcode":86005,"errmsg":"invalid chat owner"}`,
			wantPath: "/cgi-bin/appchat/create", wantErr: ErrPermanent, wantCode: 86005,
		},
		{
			name: "send to chat",
			call: func(c *Client) (string, error) {
				return "", c.SendAppChat(context.Background(), secretToken, map[string]any{"chatid": "CHATID"})
			},
			answer:   `{"errcode":0,"errmsg":"ok"}`,
			wantPath: "/cgi-bin/appchat/send",
		},
		{
			name: "send to missing chat",
			call: func(c *Client) (string, error) {
				return "", c.SendAppChat(context.Background(), secretToken, map[string]any{"chatid": "nope"})
			},
			answer:   `{"errcode":86003,"errmsg":"chatid not exist"}`,
			wantPath: "/cgi-bin/appchat/send", wantErr: ErrPermanent, wantCode: 86003,
		},
		{
			name: "update card",
			call: func(c *Client) (string, error) {
				r, err := c.UpdateTemplateCard(context.Background(), secretToken, map[string]any{"response_code": "rc"})
				return r.InvalidUser, err
			},
			answer:   `{"errcode":0,"errmsg":"ok","invaliduser":"lisi"}`,
			wantPath: "/cgi-bin/message/update_template_card", want: "lisi",
		},
		{
			name: "update card, invalid users as a list",
			call: func(c *Client) (string, error) {
				r, err := c.UpdateTemplateCard(context.Background(), secretToken, map[string]any{"response_code": "rc"})
				return r.InvalidUser, err
			},
			answer:   `{"errcode":0,"errmsg":"ok","invaliduser":["lisi","wangwu"]}`,
			wantPath: "/cgi-bin/message/update_template_card", want: "lisi|wangwu",
		},
		{
			name: "update card, unreadable list",
			call: func(c *Client) (string, error) {
				r, err := c.UpdateTemplateCard(context.Background(), secretToken, map[string]any{"response_code": "rc"})
				return r.InvalidUser, err
			},
			answer:   `{"errcode":0,"errmsg":"ok","invaliduser":{"a":1}}`,
			wantPath: "/cgi-bin/message/update_template_card", wantErr: ErrBadResponse,
		},
		{
			name: "update card busy",
			call: func(c *Client) (string, error) {
				r, err := c.UpdateTemplateCard(context.Background(), secretToken, map[string]any{"response_code": "rc"})
				return r.InvalidUser, err
			},
			answer:   `{"errcode":-1,"errmsg":"system busy"}`,
			wantPath: "/cgi-bin/message/update_template_card", wantErr: ErrRetryable, wantCode: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t)
			f.answer = tt.answer
			got, err := tt.call(c)
			checkErr(t, err, tt.wantErr, tt.wantCode)
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if f.method != http.MethodPost || f.path != tt.wantPath || f.query["access_token"] != secretToken || len(f.body) == 0 {
				t.Errorf("request %s %s %v %s", f.method, f.path, f.query, f.body)
			}
		})
	}
}

func TestUploadMedia(t *testing.T) {
	tests := []struct {
		name     string
		answer   string
		want     string
		wantErr  error
		wantCode int
	}{
		{name: "ok", answer: `{"errcode":0,"errmsg":"","type":"file","media_id":"1G6nrLmr5EC3MMb_-zK1dDdzmd0p7cNliYu9V5w7o8K0","created_at":"1380000000"}`, want: "1G6nrLmr5EC3MMb_-zK1dDdzmd0p7cNliYu9V5w7o8K0"},
		{name: "too large", answer: `{"errcode":40006,"errmsg":"invalid file size"}`, wantErr: ErrPermanent, wantCode: 40006},
		{name: "no media id", answer: `{"errcode":0,"errmsg":""}`, wantErr: ErrBadResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t)
			f.answer = tt.answer
			got, err := c.UploadMedia(context.Background(), secretToken, "file", "报销单.pdf", strings.NewReader("%PDF-1.4 data"))
			checkErr(t, err, tt.wantErr, tt.wantCode)
			if got != tt.want {
				t.Errorf("media id = %q, want %q", got, tt.want)
			}
			if f.path != "/cgi-bin/media/upload" || f.query["type"] != "file" || f.query["access_token"] != secretToken {
				t.Errorf("request %s %v", f.path, f.query)
			}
			if f.field != "media" || f.filename != "报销单.pdf" || f.fileData != "%PDF-1.4 data" {
				t.Errorf("multipart field %q file %q data %q", f.field, f.filename, f.fileData)
			}
		})
	}
}

func TestGetUserInfo(t *testing.T) {
	tests := []struct {
		name     string
		answer   string
		want     UserInfo
		wantErr  error
		wantCode int
	}{
		{name: "member", answer: `{"errcode":0,"errmsg":"ok","userid":"zhangsan","user_ticket":"TICKET"}`, want: UserInfo{UserID: "zhangsan", UserTicket: "TICKET"}},
		{name: "non-member", answer: `{"errcode":0,"errmsg":"ok","openid":"OPENID","external_userid":"wmXXX"}`, want: UserInfo{OpenID: "OPENID", ExternalUserID: "wmXXX"}},
		{name: "legacy spelling", answer: `{"errcode":0,"errmsg":"ok","UserId":"lisi","DeviceId":"d"}`, want: UserInfo{UserID: "lisi"}},
		{name: "bad code", answer: `{"errcode":40029,"errmsg":"invalid code"}`, wantErr: ErrPermanent, wantCode: 40029},
		{name: "empty answer", answer: `{"errcode":0,"errmsg":"ok"}`, wantErr: ErrBadResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t)
			f.answer = tt.answer
			got, err := c.GetUserInfo(context.Background(), secretToken, "CODE")
			checkErr(t, err, tt.wantErr, tt.wantCode)
			if got != tt.want {
				t.Errorf("UserInfo = %+v, want %+v", got, tt.want)
			}
			if f.method != http.MethodGet || f.path != "/cgi-bin/auth/getuserinfo" || f.query["code"] != "CODE" || f.query["access_token"] != secretToken {
				t.Errorf("request %s %s %v", f.method, f.path, f.query)
			}
		})
	}
}

func TestTransportErrors(t *testing.T) {
	// A listener that is closed at once: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String()
	_ = ln.Close()

	// A server that never answers until the test ends.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name    string
		client  *Client
		ctx     context.Context
		wantErr error
	}{
		{"connection refused", NewClient(deadURL), context.Background(), ErrRetryable},
		{"client timeout", NewClient(slow.URL, WithTimeout(50*time.Millisecond)), context.Background(), ErrRetryable},
		{"caller cancelled", NewClient(slow.URL), cancelled, ErrPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.client.SendMessage(tt.ctx, secretToken, []byte(`{}`))
			var te *TransportError
			if !errors.As(err, &te) {
				t.Fatalf("err = %#v, want *TransportError", err)
			}
			if strings.Contains(err.Error(), secretToken) {
				t.Fatalf("error leaks the token: %v", err)
			}
			if !strings.Contains(err.Error(), "access_token=REDACTED") {
				t.Errorf("error should show the redacted URL: %v", err)
			}
			if tt.wantErr == ErrPermanent {
				if IsRetryable(err) || IsTokenExpired(err) {
					t.Fatalf("cancelled call classified as retryable: %v", err)
				}
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("err = %v, want context.Canceled", err)
				}
				return
			}
			checkErr(t, err, tt.wantErr, 0)
		})
	}
}

func TestClassOf(t *testing.T) {
	tests := []struct {
		code int
		want Class
	}{
		{-1, ClassRetry}, {45009, ClassRetry}, {45033, ClassRetry}, {45011, ClassRetry},
		{40014, ClassRefresh}, {42001, ClassRefresh}, {41001, ClassRefresh},
		{40001, ClassPermanent}, {60020, ClassPermanent}, {81013, ClassPermanent}, {40003, ClassPermanent},
		{40056, ClassPermanent}, {301002, ClassPermanent}, {123456, ClassPermanent},
	}
	for _, tt := range tests {
		if got := ClassOf(tt.code); got != tt.want {
			t.Errorf("ClassOf(%d) = %v, want %v", tt.code, got, tt.want)
		}
	}
	for code, info := range codes {
		if info.text == "" {
			t.Errorf("code %d has no message", code)
		}
	}
	if !errors.Is(&APIError{Code: 45009}, &APIError{Code: 45009}) || errors.Is(&APIError{Code: 45009}, &APIError{Code: -1}) {
		t.Error("APIError.Is must match on the code")
	}
}

func TestDefaultBaseURL(t *testing.T) {
	c := NewClient("")
	if got := c.http.BaseURL; got != DefaultBaseURL {
		t.Fatalf("base URL = %q", got)
	}
}

// TestConcurrentCallsReuseConnections: the sender calls with many workers at
// once; the client must keep their connections for the next calls instead of
// dialling anew (resty's default keeps only GOMAXPROCS+1 idle per host).
func TestConcurrentCallsReuseConnections(t *testing.T) {
	var mu sync.Mutex
	opened := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"errcode":0,"errmsg":"ok","msgid":"m"}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			opened++
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()
	c := NewClient(srv.URL)
	const workers, rounds = 16, 20
	for range rounds {
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				if _, err := c.SendMessage(context.Background(), "tok", map[string]any{"touser": "u", "msgtype": "text", "text": map[string]string{"content": "x"}}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	mu.Lock()
	defer mu.Unlock()
	// A fresh connection per call would be workers*rounds = 320.
	if opened > 2*workers {
		t.Fatalf("%d connections opened for %d calls of %d at once, want <= %d", opened, workers*rounds, workers, 2*workers)
	}
}
