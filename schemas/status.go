package schemas

import (
	"strings"
	"time"
)

// Message statuses, kept in the wxhub_status KV bucket under the outbound id.
const (
	StatusQueued   = "queued"   // accepted, waiting for its turn
	StatusDeferred = "deferred" // held back: quiet hours or a send limit; see DeferredUntil
	StatusSent     = "sent"     // WeCom accepted it
	StatusFailed   = "failed"   // given up; Reason says why, the message is in WXHUB_DLQ
	// StatusDropped: WeCom accepted it (errcode 0) but delivers it to no one;
	// Reason starts with why ("duplicate: ..."). Only what the hub can tell
	// from its own record: see docs/outbound.md, "Dropped messages".
	StatusDropped = "dropped"
	// StatusRecalled: sent, then taken back with message/recall (DELETE /api/v1/messages/{id}).
	StatusRecalled = "recalled"
	// StatusCancelled: cancelled while still queued or deferred; never sent.
	StatusCancelled = "cancelled"
)

// MaxCardClicks bounds MessageStatus.Clicks: the newest are kept, ClickCount
// counts them all.
const MaxCardClicks = 100

// CardClick is one template_card_event for a card the hub pushed.
type CardClick struct {
	User         string    `json:"user"`
	Key          string    `json:"key,omitempty"` // EventKey: the button's or option's key
	ResponseCode string    `json:"response_code,omitempty"`
	Time         time.Time `json:"time"`
}

// MessageStatus is the record of one outbound message's fate. The gateway writes
// "queued" when it accepts a push; the sender writes every later state.
type MessageStatus struct {
	ID  string `json:"id"`
	App string `json:"app"`
	// Client is the API key name that pushed the message (Source "api/<name>");
	// only that key (or an admin key) may read the status. Empty for answers.
	Client        string     `json:"client,omitempty"`
	Status        string     `json:"status"`
	Reason        string     `json:"reason,omitempty"`
	Attempts      int        `json:"attempts,omitempty"`
	DeferredUntil *time.Time `json:"deferred_until,omitempty"`
	WeComMsgID    string     `json:"wecom_msgid,omitempty"`
	InvalidUsers  string     `json:"invalid_users,omitempty"`
	UpdatedAt     time.Time  `json:"updated_at"`

	// Card and recall fields: set for message/send messages when WeCom
	// accepted them (SentAt, ToUser), for template cards (TaskID,
	// ResponseCode, Clicks, UsedCodes).
	SentAt       *time.Time  `json:"sent_at,omitempty"`
	ToUser       string      `json:"touser,omitempty"` // the recipients as sent ("a|b")
	MsgType      string      `json:"msgtype,omitempty"`
	TaskID       string      `json:"task_id,omitempty"`
	ResponseCode string      `json:"response_code,omitempty"` // message/send's answer
	Clicks       []CardClick `json:"clicks,omitempty"`        // newest MaxCardClicks
	ClickCount   int         `json:"click_count,omitempty"`
	// UsedCodes are the response codes already spent on a card update (each works once).
	UsedCodes []string `json:"used_codes,omitempty"`
}

// AddClick appends c, keeping the newest MaxCardClicks.
func (s *MessageStatus) AddClick(c CardClick) {
	s.ClickCount++
	s.Clicks = append(s.Clicks, c)
	if n := len(s.Clicks) - MaxCardClicks; n > 0 {
		s.Clicks = append([]CardClick(nil), s.Clicks[n:]...)
	}
}

// CardCodeLifetime is how long WeCom accepts a response_code for
// message/update_template_card.
const CardCodeLifetime = 72 * time.Hour

// UnusedCode returns the newest response code of the card (from message/send
// or a click) that is not used and not older than CardCodeLifetime at now.
func (s MessageStatus) UnusedCode(now time.Time) (string, bool) {
	used := map[string]bool{}
	for _, c := range s.UsedCodes {
		used[c] = true
	}
	for i := len(s.Clicks) - 1; i >= 0; i-- {
		c := s.Clicks[i]
		if c.ResponseCode != "" && !used[c.ResponseCode] && now.Sub(c.Time) <= CardCodeLifetime {
			return c.ResponseCode, true
		}
	}
	if s.ResponseCode != "" && !used[s.ResponseCode] && s.SentAt != nil && now.Sub(*s.SentAt) <= CardCodeLifetime {
		return s.ResponseCode, true
	}
	return "", false
}

// APIClient is the API key name of an outbound message's Source ("api/<name>"),
// or "" when the message did not come through the push API.
func APIClient(source string) string {
	name, ok := strings.CutPrefix(source, "api/")
	if !ok {
		return ""
	}
	return name
}
