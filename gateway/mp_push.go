package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"

	"github.com/wxhub/wxhub/schemas"
)

// Official Accounts in the push API: a body with "account" instead of "app" is
// a customer-service message (WeChat's message/custom/send body: touser = one
// openid, msgtype and its object) or, with template_id, a template message
// (message/template/send: template_id, data, url, miniprogram). The sender
// sends both through the Official Account API.

// mpPushFields are the top-level fields of an Official Account push.
var mpPushFields = map[string]bool{
	// ours
	"account": true, "priority": true, "dedup_key": true,
	// message/custom/send
	"touser": true, "msgtype": true, "customservice": true,
	"text": true, "image": true, "voice": true, "video": true, "music": true, "news": true, "mpnews": true,
	"mpnewsarticle": true, "msgmenu": true, "wxcard": true, "miniprogrampage": true,
	"markdown": true, "textcard": true, // converted by the sender (text, one-article news)
	// message/template/send
	"template_id": true, "url": true, "miniprogram": true, "data": true, "client_msg_id": true,
}

// mpCustomTypes are the msgtypes a customer-service push may have.
var mpCustomTypes = map[string]bool{"text": true, "image": true, "voice": true, "video": true, "music": true,
	"news": true, "mpnews": true, "mpnewsarticle": true, "msgmenu": true, "wxcard": true, "miniprogrampage": true,
	"markdown": true, "textcard": true}

// enqueueMP validates and queues an Official Account push; fields holds
// "account". strict refuses unknown fields (the push API), else they are dropped.
func (g *Gateway) enqueueMP(ctx context.Context, key *APIKey, fields map[string]json.RawMessage, strict bool) (pushAccepted, string, error) {
	var name string
	if err := json.Unmarshal(fields["account"], &name); err != nil || name == "" {
		return pushAccepted{}, "", badField("account", "must be the name of an Official Account")
	}
	acct, ok := g.cfg.MP.Account(name)
	if !ok {
		return pushAccepted{}, "", badField("account", "no Official Account named %q", name)
	}
	for _, f := range []string{"app", "agentid"} {
		if _, ok := fields[f]; ok {
			return pushAccepted{}, name, badField(f, "give app (a WeCom app) or account (an Official Account), not both")
		}
	}
	if err := checkMPFields(fields, strict); err != nil {
		return pushAccepted{}, name, err
	}
	if !keyAllows(key, name) {
		return pushAccepted{}, name, &pushError{status: http.StatusForbidden, field: "account", msg: "API key " + quote(key.Name) + " may not send through account " + quote(name)}
	}
	if acct.Secret == "" {
		return pushAccepted{}, name, badField("account", "Official Account %q has no secret (mp.accounts[].secret): it can only receive", name)
	}
	var openid string
	if err := json.Unmarshal(fields["touser"], &openid); err != nil || strings.TrimSpace(openid) == "" {
		return pushAccepted{}, name, badField("touser", "must be one openid of a follower of %q", name)
	}
	if openid == "@all" || strings.ContainsAny(openid, "|, ") {
		return pushAccepted{}, name, badField("touser", "an Official Account message goes to one openid, got %q", openid)
	}
	var dedupKey string
	if raw, ok := fields["dedup_key"]; ok {
		json.Unmarshal(raw, &dedupKey)
	}
	kind := schemas.KindMessage
	if _, ok := fields["template_id"]; ok {
		kind = schemas.KindMPTemplate
		if err := checkTemplate(fields); err != nil {
			return pushAccepted{}, name, err
		}
		delete(fields, "msgtype")
	} else {
		var mt string
		json.Unmarshal(fields["msgtype"], &mt)
		if !mpCustomTypes[mt] {
			return pushAccepted{}, name, badField("msgtype", "%q is not a customer-service message type (text, image, voice, video, music, news, mpnews, mpnewsarticle, msgmenu, wxcard, miniprogrampage; markdown and textcard are converted); a template message has template_id instead", mt)
		}
		if _, ok := fields[mt]; !ok {
			return pushAccepted{}, name, badField(mt, "is required for msgtype %q", mt)
		}
		if err := mpMediaOnly(mt, fields[mt]); err != nil {
			return pushAccepted{}, name, err
		}
		if mt == "news" {
			var n struct {
				Articles []json.RawMessage `json:"articles"`
			}
			if json.Unmarshal(fields["news"], &n) != nil || len(n.Articles) != 1 {
				return pushAccepted{}, name, badField("news.articles", "a customer-service news message carries exactly 1 article")
			}
		}
		// A repeated dedup key answers the first message's id and status, even
		// when the window has closed since (checked before the window).
		if acc, ok := g.repeatedDedup(ctx, key, dedupKey); ok {
			return acc, name, nil
		}
		if err := g.checkWindow(ctx, name, openid); err != nil {
			return pushAccepted{}, name, err
		}
	}
	priority := schemas.PriorityNormal
	if raw, ok := fields["priority"]; ok {
		json.Unmarshal(raw, &priority)
	}
	for _, f := range []string{"account", "priority", "dedup_key"} {
		delete(fields, f)
	}
	body, _ := json.Marshal(fields)
	acc, err := g.queue(ctx, key, name, kind, priority, dedupKey, "", body)
	return acc, name, err
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// checkMPFields refuses (strict) or drops what an Official Account push cannot carry.
func checkMPFields(fields map[string]json.RawMessage, strict bool) error {
	var unknown []string
	for f := range fields {
		if !mpPushFields[f] {
			unknown = append(unknown, f)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	if strict {
		switch unknown[0] {
		case "toparty", "totag", "chatid":
			return badField(unknown[0], "is WeCom's: an Official Account message goes to one openid (touser)")
		}
		return badField(unknown[0], "unknown field (an Official Account message has no such field)")
	}
	for _, f := range unknown {
		delete(fields, f)
	}
	return nil
}

// templateValue is one data field of a template message.
type templateValue struct {
	Value *string `json:"value"`
	Color string  `json:"color,omitempty"`
}

// checkTemplate checks a template message as WeChat does: a template_id, data
// mapping each of the template's keys to {"value": ..., "color": ...}, and a
// miniprogram with its appid.
func checkTemplate(fields map[string]json.RawMessage) error {
	var tid string
	if json.Unmarshal(fields["template_id"], &tid) != nil || strings.TrimSpace(tid) == "" {
		return badField("template_id", "must be the id of a template of the account")
	}
	if raw, ok := fields["msgtype"]; ok {
		var mt string
		if json.Unmarshal(raw, &mt) != nil || mt != "template" {
			return badField("msgtype", "a template message (template_id) has no msgtype, or \"template\"")
		}
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(fields["data"], &data); err != nil || len(data) == 0 {
		return badField("data", "must map each of the template's keys to {\"value\": \"...\"}")
	}
	for k, raw := range data {
		var v templateValue
		if err := json.Unmarshal(raw, &v); err != nil || v.Value == nil {
			return badField("data."+k, "must be {\"value\": \"...\", \"color\": \"#173177\"} (color optional)")
		}
	}
	if raw, ok := fields["miniprogram"]; ok {
		var mp struct {
			AppID string `json:"appid"`
		}
		if json.Unmarshal(raw, &mp) != nil || mp.AppID == "" {
			return badField("miniprogram.appid", "is required (with pagepath) to open a mini program")
		}
	}
	return nil
}
