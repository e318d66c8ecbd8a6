package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/wxhub/wxhub/schemas"
)

// dropInResponseCode is the response_code the drop-in send answers: for a
// template card, a hub code naming the message (dropInCardCode + id), which
// the drop-in update_template_card accepts; WeCom's own code comes later.
func dropInResponseCode(body []byte, id string) string {
	var b struct {
		MsgType string `json:"msgtype"`
	}
	if json.Unmarshal(body, &b) != nil || b.MsgType != "template_card" {
		return ""
	}
	return dropInCardCode + id
}

// dropInCaller is the API key of a drop-in request's access_token, or false
// after answering WeCom's error (40014 not ours, 42001 expired).
func (g *Gateway) dropInCaller(w http.ResponseWriter, r *http.Request) (*APIKey, bool) {
	key, code := g.dropInKey(r.URL.Query().Get("access_token"))
	switch code {
	case 0:
		return key, true
	case 42001:
		writeJSON(w, http.StatusOK, wecomError(42001, "access_token expired"))
	default:
		writeJSON(w, http.StatusOK, wecomError(40014, "invalid access_token"))
	}
	return nil, false
}

// dropInAuth is dropInCaller and the request's body (44004 when too large).
func (g *Gateway) dropInAuth(w http.ResponseWriter, r *http.Request) (*APIKey, []byte, bool) {
	key, ok := g.dropInCaller(w, r)
	if !ok {
		return nil, nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxBodyBytes))
	if err != nil {
		writeJSON(w, http.StatusOK, wecomError(44004, "request body too large"))
		return nil, nil, false
	}
	return key, body, true
}

// writeDropInError answers a push-API error in WeCom's shape: 40058 (invalid
// parameter) for what the caller got wrong, 60011 for another app's, -1 else.
func writeDropInError(w http.ResponseWriter, err error) {
	var pe *pushError
	switch {
	case errors.As(err, &pe) && pe.status == http.StatusForbidden:
		writeJSON(w, http.StatusOK, wecomError(60011, "no privilege to access this app: "+pe.msg))
	case errors.As(err, &pe) && pe.status < 500:
		writeJSON(w, http.StatusOK, wecomError(40058, "invalid parameter: "+pe.Error()))
	default:
		writeJSON(w, http.StatusOK, wecomError(-1, "system busy"))
	}
}

// dropInRecall is POST /cgi-bin/message/recall {"msgid": <the hub id the drop-in send answered>}.
func (g *Gateway) dropInRecall(w http.ResponseWriter, r *http.Request) {
	key, body, ok := g.dropInAuth(w, r)
	if !ok {
		return
	}
	var req struct {
		MsgID string `json:"msgid"`
	}
	if json.Unmarshal(body, &req) != nil || req.MsgID == "" {
		writeJSON(w, http.StatusOK, wecomError(40058, "invalid parameter: msgid is required"))
		return
	}
	_, err := g.recall(callerTrace(r), key, req.MsgID)
	g.metrics.pushes.WithLabelValues(key.Name, "recall", resultLabel(err)).Inc()
	if err != nil {
		writeDropInError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, wecomError(0, "ok"))
}

// dropInUpdateCard is POST /cgi-bin/message/update_template_card. A hub code
// (from the drop-in send) updates that message with its newest unused WeCom
// code; any other code (WeCom's, from a click callback) is passed on as is.
func (g *Gateway) dropInUpdateCard(w http.ResponseWriter, r *http.Request) {
	key, body, ok := g.dropInAuth(w, r)
	if !ok {
		return
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if dec.Decode(&fields) != nil {
		writeJSON(w, http.StatusOK, wecomError(47001, "data format error"))
		return
	}
	var code string
	_ = json.Unmarshal(fields["response_code"], &code)
	if code == "" {
		writeJSON(w, http.StatusOK, wecomError(40058, "invalid parameter: response_code is required"))
		return
	}
	var err error
	if id, hub := strings.CutPrefix(code, dropInCardCode); hub {
		var req cardUpdateRequest
		_ = json.Unmarshal(fields["userids"], &req.UserIDs)
		var atAll int
		_ = json.Unmarshal(fields["atall"], &atAll)
		if atAll == 1 {
			req.UserIDs = nil
		}
		req.TemplateCard = fields["template_card"]
		if raw, ok := fields["button"]; ok {
			_ = json.Unmarshal(raw, &req.Button)
		}
		_, err = g.updateCard(callerTrace(r), key, id, req)
	} else {
		err = g.dropInPassCard(r, key, fields)
	}
	g.metrics.pushes.WithLabelValues(key.Name, "card_update", resultLabel(err)).Inc()
	if err != nil {
		writeDropInError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"errcode": 0, "errmsg": "ok", "invaliduser": []string{}})
}

// dropInPassCard queues an update with WeCom's own response_code through the
// sender, for the app named by agentid.
func (g *Gateway) dropInPassCard(r *http.Request, key *APIKey, fields map[string]json.RawMessage) error {
	app, err := g.resolveApp(fields)
	if err != nil {
		return err
	}
	if !keyAllows(key, app) {
		return &pushError{status: http.StatusForbidden, field: "app", msg: "API key " + key.Name + " may not use app " + app}
	}
	delete(fields, "agentid")
	delete(fields, "app")
	raw, _ := json.Marshal(fields)
	_, err = g.queueCall(callerTrace(r), key, app, schemas.KindCardUpdate, "", raw)
	return err
}
