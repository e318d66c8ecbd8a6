package schemas

import (
	"encoding/json"
	"time"
)

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

// MediaPush is a push-API message (push.v1.json) that sends a medium: set
// MsgType and the object of that name. A Go client's view of WeCom's body.
type MediaPush struct {
	App      string    `json:"app"`
	ToUser   string    `json:"touser,omitempty"`
	ChatID   string    `json:"chatid,omitempty"`
	MsgType  string    `json:"msgtype"` // image, voice, video, file
	Image    *MediaRef `json:"image,omitempty"`
	Voice    *MediaRef `json:"voice,omitempty"`
	Video    *MediaRef `json:"video,omitempty"`
	File     *MediaRef `json:"file,omitempty"`
	Priority string    `json:"priority,omitempty"`
	DedupKey string    `json:"dedup_key,omitempty"`
}

// MediaRef names a push's medium (push.v1.json $defs/media): MediaID (WeCom's,
// or a hub media id from POST /api/v1/media), or URL for the hub to fetch.
type MediaRef struct {
	MediaID     string `json:"media_id,omitempty"`
	URL         string `json:"url,omitempty"`
	Filename    string `json:"filename,omitempty"`    // with URL: the name WeCom shows
	Title       string `json:"title,omitempty"`       // video
	Description string `json:"description,omitempty"` // video
}

// MediaStored is the answer of POST /api/v1/media (media.v1.json): a hub
// media id, stable for the content and valid while the hub keeps it
// (bus.MediaTTL), longer than WeCom's 3 days.
type MediaStored struct {
	MediaID   string    `json:"media_id"` // wxhm_<sha256>
	Type      string    `json:"type"`     // image, voice, video, file
	Size      int64     `json:"size"`
	SHA256    string    `json:"sha256"`
	Filename  string    `json:"filename,omitempty"`
	CreatedAt time.Time `json:"created_at"` // when the hub stored the content
	ExpiresAt time.Time `json:"expires_at"` // when the hub forgets it (created_at + 7 days); upload again after
}
