package connectors

import "github.com/wxhub/wxhub/schemas"

// MPTemplate is an Official Account template message (模板消息,
// message/template/send) to openid: templateID from the account's template
// library, data one value per key of the template ("first", "keyword1", ...),
// url opened on tap ("" for none). Unlike a customer-service reply, which
// WeChat accepts only within 48 hours of the customer's last interaction, a
// template message may go to a follower at any time. The reply's App must be
// the account (the event's, when it came from the account).
func MPTemplate(openid, templateID, url string, data map[string]string) Reply {
	d := make(map[string]schemas.TemplateValue, len(data))
	for k, v := range data {
		d[k] = schemas.TemplateValue{Value: v}
	}
	body := map[string]any{"touser": openid, "template_id": templateID, "data": d}
	if url != "" {
		body["url"] = url
	}
	return Reply{Kind: schemas.KindMPTemplate, Body: body}
}
