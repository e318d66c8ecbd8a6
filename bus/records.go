package bus

import (
	"encoding/base64"
	"regexp"
	"strconv"
	"time"
)

// The records below are read or written by more than one component; each has
// its one type and key encoding here.

var plainKey = regexp.MustCompile(`^[-_=a-zA-Z0-9]+$`)

// SafeKey is the KV key for an arbitrary string (a userid, an outbound id):
// the string itself when it is made of key-safe characters, else "b64_" +
// base64url of it (userids may hold '@' and '.', openids '-').
func SafeKey(s string) string {
	if plainKey.MatchString(s) && len(s) < 200 && !(len(s) >= 4 && s[:4] == "b64_") {
		return s
	}
	return "b64_" + base64.RawURLEncoding.EncodeToString([]byte(s))
}

// StatusKey is the key of an outbound message's schemas.MessageStatus in
// BucketStatus: written "queued" by the gateway, then by the sender.
func StatusKey(id string) string { return SafeKey(id) }

// CardTaskKey is the key, in BucketStatus, of the CardTask naming the pushed
// message that carried app's template card taskID. The '.' keeps it apart from
// every StatusKey (SafeKey never yields one).
func CardTaskKey(app, taskID string) string {
	return "cardtask." + SafeKey(app) + "." + SafeKey(taskID)
}

// CardTask maps a template card's task_id to the outbound id that pushed it,
// so that a template_card_event finds the message's status. Written by the
// sender when WeCom accepted the card.
type CardTask struct {
	ID string `json:"id"`
}

// TokenRecord is an app's access token in BucketTokens, shared by every
// sender and gateway replica: one replica at a time holds the refresh lease
// (RefreshBy until RefreshUntil) and calls gettoken; a refused secret is kept
// in Error until ErrorUntil so that nobody asks WeCom again before then.
type TokenRecord struct {
	Token        string    `json:"token,omitempty"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"`
	Stale        bool      `json:"stale,omitempty"` // WeCom said 40014/42001 for this token
	RefreshBy    string    `json:"refresh_by,omitempty"`
	RefreshUntil time.Time `json:"refresh_until,omitzero"`
	Error        string    `json:"error,omitempty"`
	ErrorUntil   time.Time `json:"error_until,omitzero"`
}

// Valid reports whether the token may still be used at now, refreshing
// early before it expires.
func (r TokenRecord) Valid(now time.Time, early time.Duration) bool {
	return r.Token != "" && !r.Stale && now.Before(r.ExpiresAt.Add(-early))
}

var tokenKeyUnsafe = regexp.MustCompile(`[^-_=a-zA-Z0-9]`)

// TokenKey is the key of a WeCom app's token: one per corp and agent.
func TokenKey(corpID string, agentID int64) string {
	return tokenKeyUnsafe.ReplaceAllString(corpID, "_") + "_" + strconv.FormatInt(agentID, 10)
}

// MPTokenKey is the key of an Official Account's token: it belongs to its
// appid, whichever corp runs the hub.
func MPTokenKey(appID string) string {
	return "mp_" + tokenKeyUnsafe.ReplaceAllString(appID, "_")
}

// CancelKey is the key, in BucketStatus, of the mark the gateway creates when
// a client cancels a pushed message (DELETE /api/v1/messages/{id}). The sender
// checks it right before sending and never sends a marked message; a mark that
// lands during the send makes it recall the message at once. A separate key,
// so that no status write can overwrite it.
func CancelKey(id string) string { return "cancel." + SafeKey(id) }
