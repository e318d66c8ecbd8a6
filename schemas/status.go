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
)

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
