package connectors

import (
	json "github.com/goccy/go-json"

	"github.com/wxhub/wxhub/schemas"
)

// Reply is one message the runner publishes to WXHUB_OUT for the sender. Build
// it with the helpers (Text, Markdown, ...) or set Body to WeCom's own request
// body for the API that Kind names, without agentid (the sender adds it).
type Reply struct {
	// App is the app's name in the config; empty means the event's app.
	App string
	// Kind is schemas.KindMessage (default), KindAppChat or KindCardUpdate.
	Kind string
	// Priority is schemas.PriorityUrgent, PriorityNormal (default) or PriorityBulk.
	// Urgent messages pass the user's quiet hours.
	Priority string
	// DedupKey, if set, is passed to the sender as the caller's idempotency key.
	DedupKey string
	// Body is WeCom's request body; anything encoding/json can marshal.
	Body any
}

// WithPriority returns r with the given priority.
func (r Reply) WithPriority(p string) Reply { r.Priority = p; return r }

// ToApp returns r sent through another app.
func (r Reply) ToApp(app string) Reply { r.App = app; return r }

func message(user, msgtype string, content any) Reply {
	return Reply{Kind: schemas.KindMessage, Body: map[string]any{
		"touser": user, "msgtype": msgtype, msgtype: content,
	}}
}

// Text is a text message to user (a WeCom userid or an Official Account openid;
// several WeCom users as "a|b").
func Text(user, content string) Reply {
	return message(user, "text", map[string]string{"content": content})
}

// Markdown is a WeCom markdown message.
func Markdown(user, content string) Reply {
	return message(user, "markdown", map[string]string{"content": content})
}

// TextCard is a WeCom text card; btntxt may be empty (WeCom shows "详情").
func TextCard(user, title, description, url, btntxt string) Reply {
	c := map[string]string{"title": title, "description": description, "url": url}
	if btntxt != "" {
		c["btntxt"] = btntxt
	}
	return message(user, "textcard", c)
}

// TemplateCard is a WeCom template card; card is the template_card object
// (card_type, main_title, button_list, task_id, ...).
func TemplateCard(user string, card any) Reply {
	return message(user, "template_card", card)
}

// File sends a file already uploaded with media/upload.
func File(user, mediaID string) Reply {
	return message(user, "file", map[string]string{"media_id": mediaID})
}

// Image sends an image already uploaded with media/upload.
func Image(user, mediaID string) Reply {
	return message(user, "image", map[string]string{"media_id": mediaID})
}

// CardUpdate updates a template card that the user clicked
// (message/update_template_card): responseCode is the event's ResponseCode,
// valid once within 72 hours; card is the new template_card object.
func CardUpdate(responseCode string, userIDs []string, card any) Reply {
	return Reply{Kind: schemas.KindCardUpdate, Body: map[string]any{
		"userids": userIDs, "response_code": responseCode, "template_card": card,
	}}
}

// CardButtonUpdate turns the clicked card's buttons into one disabled button
// labelled name (e.g. "已确认").
func CardButtonUpdate(responseCode string, userIDs []string, name string) Reply {
	return Reply{Kind: schemas.KindCardUpdate, Body: map[string]any{
		"userids": userIDs, "response_code": responseCode, "button": map[string]string{"replace_name": name},
	}}
}

// Raw is a reply with a body the caller built; kind "" means message/send.
func Raw(kind string, body json.RawMessage) Reply { return Reply{Kind: kind, Body: body} }
