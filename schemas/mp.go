package schemas

// MPTemplatePush is a template message to an Official Account's follower as
// the push API takes it (push.v1 with account and template_id): WeChat's own
// message/template/send body plus the hub's account, priority and dedup_key.
// The body the sender posts is the same without the hub's fields.
type MPTemplatePush struct {
	Account  string `json:"account"`             // the account's name in mp.accounts
	Priority string `json:"priority,omitempty"`  // urgent, normal (default) or bulk
	DedupKey string `json:"dedup_key,omitempty"` // the client's idempotency key
	ToUser   string `json:"touser"`              // one openid
	// TemplateID is a template of the account's template library.
	TemplateID string `json:"template_id"`
	// URL opens when the user taps the message; MiniProgram, when given, wins.
	URL         string                   `json:"url,omitempty"`
	MiniProgram *MPMiniProgram           `json:"miniprogram,omitempty"`
	Data        map[string]TemplateValue `json:"data"` // one entry per key of the template ({{first.DATA}} -> "first")
	// ClientMsgID makes WeChat drop a repeated send; the sender sets it to the
	// message id when empty.
	ClientMsgID string `json:"client_msg_id,omitempty"`
}

// MPMiniProgram is the mini program a template message opens.
type MPMiniProgram struct {
	AppID    string `json:"appid"`
	PagePath string `json:"pagepath,omitempty"`
}

// TemplateValue is one data field of a template message.
type TemplateValue struct {
	Value string `json:"value"`
	Color string `json:"color,omitempty"` // e.g. "#173177"
}
