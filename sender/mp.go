package sender

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/wxhub/wxhub/schemas"
)

// Official Accounts (服务号) in the sender. An outbound message whose data.app
// names an account goes out through the Official Account API instead of
// WeCom's: kind "message" (WeCom's message/send body with touser = one openid)
// as a customer-service message (message/custom/send), kind "mp_template" as a
// template message (message/template/send). Neither per-member limits nor quiet
// hours apply (see docs/outbound.md, "Official Account replies").

// mpCustomTypes are the msgtypes message/custom/send accepts; markdown and
// textcard, which WeCom connectors use, are converted (mpRequestBody).
var mpCustomTypes = map[string]bool{"text": true, "image": true, "voice": true, "video": true, "music": true,
	"news": true, "mpnews": true, "mpnewsarticle": true, "msgmenu": true, "wxcard": true, "miniprogrampage": true,
	"markdown": true, "textcard": true}

// wecomOnlyFields are message/send fields the Official Account API does not know.
var wecomOnlyFields = []string{"agentid", "safe", "enable_id_trans", "enable_duplicate_check", "duplicate_check_interval"}

// decodeMP checks an outbound message for an Official Account.
func decodeMP(j *job, str func(string) string) error {
	d := j.out.Data
	touser := str("touser")
	checkUser := func() error {
		switch {
		case touser == "":
			return fmt.Errorf("%w: data.body.touser: empty (an Official Account message goes to one openid)", ErrBadMessage)
		case touser == "@all" || strings.Contains(touser, "|"):
			return fmt.Errorf("%w: data.body.touser: %q: an Official Account message goes to one openid", ErrBadMessage, touser)
		case str("toparty") != "" || str("totag") != "":
			return fmt.Errorf("%w: data.body: toparty and totag are WeCom's; an Official Account message goes to one openid", ErrBadMessage)
		}
		j.users = []string{touser}
		return nil
	}
	switch d.Kind {
	case "", schemas.KindMessage:
		j.out.Data.Kind = schemas.KindMessage
		if err := checkUser(); err != nil {
			return err
		}
		mt := str("msgtype")
		if !mpCustomTypes[mt] {
			return fmt.Errorf("%w: data.body.msgtype: %q is not a customer-service message type (text, image, voice, video, music, news, mpnews, mpnewsarticle, msgmenu, wxcard, miniprogrampage; markdown and textcard are converted)", ErrBadMessage, mt)
		}
	case schemas.KindMPTemplate:
		if err := checkUser(); err != nil {
			return err
		}
		if str("template_id") == "" {
			return fmt.Errorf("%w: data.body.template_id: empty", ErrBadMessage)
		}
	default:
		return fmt.Errorf("%w: data.kind: %q is not available for Official Account %q (message or %s)", ErrBadMessage, d.Kind, j.app.Name, schemas.KindMPTemplate)
	}
	return nil
}

// mpRequestBody is the Official Account request body of j: WeCom-only fields
// dropped, markdown sent as text (WeChat shows it as written) and a textcard as
// a one-article news message. A template message gets client_msg_id = the
// outbound id unless it has one, so that WeChat drops a retried send (it keeps
// one message per openid and client_msg_id).
func mpRequestBody(j *job) map[string]json.RawMessage {
	b := make(map[string]json.RawMessage, len(j.body)+1)
	for k, v := range j.body {
		b[k] = v
	}
	for _, k := range wecomOnlyFields {
		delete(b, k)
	}
	if j.out.Data.Kind == schemas.KindMPTemplate {
		if _, ok := b["client_msg_id"]; !ok && len(j.out.ID) <= 64 {
			b["client_msg_id"], _ = json.Marshal(j.out.ID)
		}
		return b
	}
	var mt string
	_ = json.Unmarshal(b["msgtype"], &mt)
	switch mt {
	case "markdown":
		var md struct {
			Content string `json:"content"`
		}
		_ = json.Unmarshal(b["markdown"], &md)
		delete(b, "markdown")
		b["msgtype"] = json.RawMessage(`"text"`)
		b["text"], _ = json.Marshal(map[string]string{"content": md.Content})
	case "textcard":
		var tc struct {
			Title       string `json:"title"`
			Description string `json:"description"`
			URL         string `json:"url"`
		}
		_ = json.Unmarshal(b["textcard"], &tc)
		delete(b, "textcard")
		b["msgtype"] = json.RawMessage(`"news"`)
		b["news"], _ = json.Marshal(map[string]any{"articles": []map[string]string{
			{"title": tc.Title, "description": tc.Description, "url": tc.URL}}})
	}
	return b
}
