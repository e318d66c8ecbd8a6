package gateway_test

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/wxhub/wxhub/wecom"
)

// TestOfficialAccountURLVerification sends the GET exactly as WeChat does when
// an admin saves an Official Account's server URL: signature (SHA1 of the
// sorted token, timestamp, nonce), timestamp, nonce and a plain echostr, with no
// msg_signature, whatever the account's message mode.
func TestOfficialAccountURLVerification(t *testing.T) {
	cfg := testConfig()
	cfg.MP.Accounts = []wecom.AccountConfig{
		{Name: "plain", AppID: "wxplain", Token: token, PlainText: true},
		{Name: "compat", AppID: "wxcompat", Token: token, EncodingAESKey: aesKey, PlainText: true},
		{Name: "safe", AppID: "wxsafe", Token: token, EncodingAESKey: aesKey},
	}
	e := startEnv(t, cfg)
	stamp := strconv.FormatInt(fixedNow.Unix(), 10)
	stale := strconv.FormatInt(fixedNow.Unix()-3600, 10)
	const echostr = "5183826546476413428"
	tests := []struct {
		name       string
		account    string
		sig, stamp string
		want       int
	}{
		{"plain mode", "plain", plainSig(token, stamp, "1234567890"), stamp, 200},
		{"compatible mode", "compat", plainSig(token, stamp, "1234567890"), stamp, 200},
		{"safe mode", "safe", plainSig(token, stamp, "1234567890"), stamp, 200},
		{"safe mode, forged signature", "safe", plainSig("other", stamp, "1234567890"), stamp, 401},
		{"compatible mode, forged signature", "compat", "", stamp, 401},
		{"safe mode, stale timestamp", "safe", plainSig(token, stale, "1234567890"), stale, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{"signature": {tt.sig}, "timestamp": {tt.stamp}, "nonce": {"1234567890"}, "echostr": {echostr}}
			resp, err := http.Get(e.srv.URL + "/mp/" + tt.account + "/callback?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tt.want)
			}
			if tt.want == 200 && string(body) != echostr {
				t.Fatalf("answered %q, want the echostr as it came", body)
			}
		})
	}
}
