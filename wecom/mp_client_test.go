package wecom

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func newMPFake(t *testing.T) (*fakeWeCom, *MPClient) {
	t.Helper()
	f := &fakeWeCom{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, NewMPClient(srv.URL+"/", WithTimeout(5*time.Second))
}

func TestMPGetToken(t *testing.T) {
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
		{name: "ok", answer: `{"access_token":"tok-1","expires_in":7200}`, want: "tok-1", wantTTL: 2 * time.Hour},
		{name: "wrong secret 40001", answer: `{"errcode":40001,"errmsg":"invalid credential, access_token is invalid or not latest"}`, wantErr: ErrPermanent, wantCode: 40001, wantMsg: "invalid AppSecret"},
		{name: "wrong secret 40125", answer: `{"errcode":40125,"errmsg":"invalid appsecret"}`, wantErr: ErrPermanent, wantCode: 40125, wantMsg: "mp.accounts[].secret"},
		{name: "invalid appid", answer: `{"errcode":40013,"errmsg":"invalid appid"}`, wantErr: ErrPermanent, wantCode: 40013, wantMsg: "invalid AppID"},
		{name: "ip not whitelisted", answer: `{"errcode":40164,"errmsg":"invalid ip 1.2.3.4, not in whitelist"}`, wantErr: ErrPermanent, wantCode: 40164, wantMsg: "IP whitelist"},
		{name: "busy", answer: `{"errcode":-1,"errmsg":"system error"}`, wantErr: ErrRetryable, wantCode: -1},
		{name: "no token in answer", answer: `{"expires_in":7200}`, wantErr: ErrBadResponse},
		{name: "http 502", status: 502, answer: `oops`, wantErr: ErrRetryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newMPFake(t)
			f.status, f.answer = tt.status, tt.answer
			got, ttl, err := c.GetToken(context.Background(), "wx5823bf96d3bd56c7", secretToken)
			checkErr(t, err, tt.wantErr, tt.wantCode)
			if err != nil && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %v, want it to say %q", err, tt.wantMsg)
			}
			if got != tt.want || ttl != tt.wantTTL {
				t.Errorf("GetToken = %q, %v; want %q, %v", got, ttl, tt.want, tt.wantTTL)
			}
			if f.method != http.MethodGet || f.path != "/cgi-bin/token" || f.query["grant_type"] != "client_credential" ||
				f.query["appid"] != "wx5823bf96d3bd56c7" || f.query["secret"] != secretToken {
				t.Errorf("request %s %s %v", f.method, f.path, f.query)
			}
		})
	}
}

func TestMPSendCustom(t *testing.T) {
	tests := []struct {
		name     string
		answer   string
		wantErr  error
		wantCode int
		wantMsg  string
	}{
		{name: "ok", answer: `{"errcode":0,"errmsg":"ok"}`},
		{name: "outside 48h window", answer: `{"errcode":45015,"errmsg":"response out of time limit or subscription is canceled"}`, wantErr: ErrPermanent, wantCode: 45015, wantMsg: "48-hour customer-service window; use a template message"},
		{name: "per-interaction cap", answer: `{"errcode":45047,"errmsg":"out of response count limit"}`, wantErr: ErrPermanent, wantCode: 45047},
		{name: "invalid openid", answer: `{"errcode":40003,"errmsg":"invalid openid"}`, wantErr: ErrPermanent, wantCode: 40003, wantMsg: "not a follower"},
		// On a send, 40001 is a stale token, not a wrong secret.
		{name: "40001 means refresh on a send", answer: `{"errcode":40001,"errmsg":"invalid credential, access_token is invalid or not latest"}`, wantErr: ErrTokenExpired, wantCode: 40001, wantMsg: "refresh"},
		{name: "expired token", answer: `{"errcode":42001,"errmsg":"access_token expired"}`, wantErr: ErrTokenExpired, wantCode: 42001},
		{name: "invalid token", answer: `{"errcode":40014,"errmsg":"invalid access_token"}`, wantErr: ErrTokenExpired, wantCode: 40014},
		{name: "busy", answer: `{"errcode":-1,"errmsg":"system error"}`, wantErr: ErrRetryable, wantCode: -1},
		{name: "not json", answer: `<html/>`, wantErr: ErrRetryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newMPFake(t)
			f.answer = tt.answer
			body := map[string]any{"touser": "o6_bmjrPTlm6_2sgVt7hMZOPfL2M", "msgtype": "text", "text": map[string]string{"content": "你好"}}
			err := c.SendCustom(context.Background(), secretToken, body)
			checkErr(t, err, tt.wantErr, tt.wantCode)
			if err != nil {
				var me *MPError
				if !errors.As(err, &me) && tt.wantCode != 0 {
					t.Errorf("err = %#v, want *MPError", err)
				}
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("err = %v, want it to say %q", err, tt.wantMsg)
				}
			}
			if f.method != http.MethodPost || f.path != "/cgi-bin/message/custom/send" || f.query["access_token"] != secretToken {
				t.Errorf("request %s %s %v", f.method, f.path, f.query)
			}
			var got map[string]any
			if err := json.Unmarshal(f.body, &got); err != nil || got["touser"] != "o6_bmjrPTlm6_2sgVt7hMZOPfL2M" {
				t.Errorf("body %s (%v)", f.body, err)
			}
		})
	}
}

func TestMPSendTemplate(t *testing.T) {
	tests := []struct {
		name     string
		answer   string
		want     string
		wantErr  error
		wantCode int
	}{
		{name: "ok, numeric msgid", answer: `{"errcode":0,"errmsg":"ok","msgid":200228332}`, want: "200228332"},
		{name: "ok, string msgid", answer: `{"errcode":0,"errmsg":"ok","msgid":"42"}`, want: "42"},
		{name: "invalid template", answer: `{"errcode":40037,"errmsg":"invalid template_id"}`, wantErr: ErrPermanent, wantCode: 40037},
		{name: "not a follower", answer: `{"errcode":43004,"errmsg":"require subscribe"}`, wantErr: ErrPermanent, wantCode: 43004},
		{name: "bad msgid", answer: `{"errcode":0,"errmsg":"ok","msgid":{}}`, wantErr: ErrBadResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newMPFake(t)
			f.answer = tt.answer
			got, err := c.SendTemplate(context.Background(), secretToken, []byte(`{"touser":"o1","template_id":"T1","data":{}}`))
			checkErr(t, err, tt.wantErr, tt.wantCode)
			if got != tt.want {
				t.Errorf("msgid = %q, want %q", got, tt.want)
			}
			if f.path != "/cgi-bin/message/template/send" {
				t.Errorf("path %s", f.path)
			}
		})
	}
}

func TestMPClassOf(t *testing.T) {
	tests := []struct {
		op   string
		code int
		want Class
	}{
		{MPOpToken, 40001, ClassPermanent},
		{MPOpCustom, 40001, ClassRefresh},
		{MPOpTemplate, 40001, ClassRefresh},
		{MPOpCustom, 42001, ClassRefresh},
		{MPOpCustom, 40014, ClassRefresh},
		{MPOpCustom, 45015, ClassPermanent},
		{MPOpCustom, 45047, ClassPermanent},
		{MPOpCustom, -1, ClassRetry},
		{MPOpCustom, 99999, ClassPermanent},
	}
	for _, tt := range tests {
		if got := MPClassOf(tt.op, tt.code); got != tt.want {
			t.Errorf("MPClassOf(%s, %d) = %v, want %v", tt.op, tt.code, got, tt.want)
		}
	}
	// An *MPError compares equal to an *APIError of the same code.
	err := error(&MPError{Code: 45015, Op: MPOpCustom})
	if !errors.Is(err, &APIError{Code: 45015}) || errors.Is(err, &APIError{Code: 45047}) {
		t.Error("MPError.Is(*APIError) by code")
	}
}

// The AppSecret travels in the token URL's query as "secret": a transport
// error must not show it.
func TestMPTransportErrorRedactsSecret(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	_ = ln.Close()
	c := NewMPClient(dead)
	_, _, err = c.GetToken(context.Background(), "wxapp", secretToken)
	var te *TransportError
	if !errors.As(err, &te) || !IsRetryable(err) {
		t.Fatalf("err = %#v, want a retryable *TransportError", err)
	}
	if strings.Contains(err.Error(), secretToken) || !strings.Contains(err.Error(), "secret=REDACTED") {
		t.Fatalf("error must show the redacted URL only: %v", err)
	}
	err = c.SendCustom(context.Background(), secretToken, []byte(`{}`))
	if err == nil || strings.Contains(err.Error(), secretToken) {
		t.Fatalf("send error leaks the token: %v", err)
	}
}
