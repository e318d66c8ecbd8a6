package schemas

import "encoding/json"

// CardUpdate is the body of POST /api/v1/messages/{id}/card (card_update.v1.json):
// a new card, or a button's new label, for every recipient or the listed ones.
type CardUpdate struct {
	UserIDs      []string        `json:"userids,omitempty"`
	TemplateCard json.RawMessage `json:"template_card,omitempty"`
	Button       *CardButton     `json:"button,omitempty"`
}

// CardButton replaces a clicked card's buttons with one greyed-out label.
type CardButton struct {
	ReplaceName string `json:"replace_name"`
}

// MeetingRequest is the body of POST /api/v1/meetings (meeting.v1.json): a WeCom
// meeting and its join card in one call.
type MeetingRequest struct {
	App         string   `json:"app"`
	Title       string   `json:"title"`
	Admin       string   `json:"admin_userid"`
	Invitees    []string `json:"invitees"`
	Start       string   `json:"start,omitempty"`    // RFC 3339; default now
	Duration    string   `json:"duration,omitempty"` // Go duration, 5m to 24h; default 1h
	Description string   `json:"description,omitempty"`
	ChatID      string   `json:"chatid,omitempty"` // post the card to this group chat instead of to the invitees
	Priority    string   `json:"priority,omitempty"`
}
