package wecom

import "context"

// RecallMessage calls message/recall: body is {"msgid": "..."}, the msgid
// message/send answered. WeCom takes back only messages sent in the last 24 hours.
func (c *Client) RecallMessage(ctx context.Context, token string, body any) error {
	var a sendAnswer
	return c.postJSON(ctx, "message/recall", token, body, &a)
}
