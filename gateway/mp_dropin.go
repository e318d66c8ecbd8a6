package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Drop-in Official Account endpoints: a system that already calls WeChat's
// Official Account API points its base URL (api.weixin.qq.com) at the hub and
// gets a token with its API key as the AppSecret; its customer-service and
// template messages then join the hub's queue. Answers have WeChat's shape.

func (g *Gateway) mpDropInRoutes() {
	g.mux.HandleFunc("GET /cgi-bin/token", g.mpDropInToken)
	g.mux.HandleFunc("POST /cgi-bin/message/custom/send", g.mpDropInSend(false))
	g.mux.HandleFunc("POST /cgi-bin/message/template/send", g.mpDropInSend(true))
}

// mpDropInToken is GET /cgi-bin/token?grant_type=client_credential&appid=&secret=
// with the account's appid and the client's API key as secret. Like the WeCom
// drop-in token it is an HMAC under the key (every replica accepts it), the
// same for a whole 2-hour window.
func (g *Gateway) mpDropInToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case q.Get("grant_type") != "client_credential":
		writeJSON(w, http.StatusOK, wecomError(40002, "invalid grant_type"))
		return
	case q.Get("appid") == "":
		writeJSON(w, http.StatusOK, wecomError(41002, "appid missing"))
		return
	case q.Get("secret") == "":
		writeJSON(w, http.StatusOK, wecomError(41004, "appsecret missing"))
		return
	}
	account := ""
	for _, a := range g.cfg.MP.Accounts {
		if a.AppID == q.Get("appid") {
			account = a.Name
		}
	}
	if account == "" {
		writeJSON(w, http.StatusOK, wecomError(40013, "invalid appid"))
		return
	}
	key, ok := g.keyBySecret(q.Get("secret"))
	if !ok {
		writeJSON(w, http.StatusOK, wecomError(40125, "invalid appsecret"))
		return
	}
	if !keyAllows(key, account) {
		writeJSON(w, http.StatusOK, wecomError(48001, "api unauthorized: API key "+quote(key.Name)+" may not send through account "+quote(account)))
		return
	}
	now := g.now()
	window := dropInTokenTTL.Nanoseconds()
	expiry := time.Unix(0, (now.UnixNano()/window+1)*window)
	writeJSON(w, http.StatusOK, map[string]any{ // no errcode on success, as WeChat's
		"access_token": signMPDropInToken(key, account, expiry),
		"expires_in":   int(expiry.Sub(now).Seconds()),
	})
}

func signMPDropInToken(key *APIKey, account string, expiry time.Time) string {
	payload := key.Name + "." + account + "." + strconv.FormatInt(expiry.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(key.Key))
	mac.Write([]byte("mp." + payload))
	return "wxm1." + payload + "." + hex.EncodeToString(mac.Sum(nil))
}

// mpDropInKey checks a drop-in Official Account token: 40001 when it is not
// ours, 42001 when expired.
func (g *Gateway) mpDropInKey(token string) (*APIKey, string, int) {
	parts := strings.Split(token, ".")
	if len(parts) != 5 || parts[0] != "wxm1" {
		return nil, "", 40001
	}
	exp, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		return nil, "", 40001
	}
	for i := range g.keys {
		k := &g.keys[i]
		if k.Name != parts[1] {
			continue
		}
		if !hmac.Equal([]byte(signMPDropInToken(k, parts[2], time.Unix(exp, 0))), []byte(token)) {
			return nil, "", 40001
		}
		if !g.now().Before(time.Unix(exp, 0)) {
			return nil, "", 42001
		}
		return k, parts[2], 0
	}
	return nil, "", 40001
}

// mpDropInSend is POST /cgi-bin/message/custom/send (template false) or
// /cgi-bin/message/template/send (template true), answering as WeChat does;
// a customer-service message outside the 48-hour window gets WeChat's 45015.
func (g *Gateway) mpDropInSend(template bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, account, code := g.mpDropInKey(r.URL.Query().Get("access_token"))
		switch code {
		case 40001:
			writeJSON(w, http.StatusOK, wecomError(40001, "invalid credential, access_token is invalid or not latest"))
			return
		case 42001:
			writeJSON(w, http.StatusOK, wecomError(42001, "access_token expired"))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxBodyBytes))
		if err != nil {
			writeJSON(w, http.StatusOK, wecomError(44004, "request body too large"))
			return
		}
		var fields map[string]json.RawMessage
		if json.Unmarshal(body, &fields) != nil || fields == nil {
			writeJSON(w, http.StatusOK, wecomError(47001, "data format error"))
			return
		}
		_, hasTemplate := fields["template_id"]
		switch {
		case template && !hasTemplate:
			writeJSON(w, http.StatusOK, wecomError(40037, "invalid template_id"))
			return
		case !template && hasTemplate:
			writeJSON(w, http.StatusOK, wecomError(40008, "invalid message type: a template message goes to message/template/send"))
			return
		}
		fields["account"], _ = json.Marshal(account)
		body, _ = json.Marshal(fields)
		acc, _, err := g.enqueue(callerTrace(r), key, body, false)
		g.metrics.pushes.WithLabelValues(key.Name, account, resultLabel(err)).Inc()
		if err != nil {
			writeJSON(w, http.StatusOK, mpDropInError(err))
			return
		}
		resp := map[string]any{"errcode": 0, "errmsg": "ok"}
		if template {
			resp["msgid"] = acc.ID // the hub's id (GET /api/v1/messages/{id}), not a number
		}
		writeJSON(w, http.StatusOK, resp)
	}
}

// mpDropInError maps a push error to the errcode WeChat would answer.
func mpDropInError(err error) map[string]any {
	var wc *windowClosedError
	var pe *pushError
	switch {
	case errors.As(err, &wc):
		return wecomError(45015, "response out of time limit or subscription is canceled: "+wc.Error())
	case errors.As(err, &pe) && pe.status == http.StatusForbidden:
		return wecomError(48001, "api unauthorized: "+pe.msg)
	case errors.As(err, &pe) && pe.field == "template_id":
		return wecomError(40037, "invalid template_id: "+pe.msg)
	case errors.As(err, &pe) && strings.HasPrefix(pe.field, "data"):
		return wecomError(47003, "argument invalid! "+pe.Error())
	case errors.As(err, &pe) && pe.field == "touser":
		return wecomError(40003, "invalid openid: "+pe.msg)
	case errors.As(err, &pe) && pe.field == "msgtype":
		return wecomError(40008, "invalid message type: "+pe.msg)
	case errors.As(err, &pe):
		return wecomError(47001, "data format error: "+pe.Error())
	default:
		return wecomError(-1, "system error")
	}
}
