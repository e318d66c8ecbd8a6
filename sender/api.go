package sender

import (
	"context"
	"time"
)

// errClass is what the sender does about a failed call.
type errClass int

const (
	errRetry     errClass = iota // -1 busy, 5xx, network: back off and retry the message
	errToken                     // 40014/42001: token invalid or expired, refresh once and retry
	errFrequency                 // 45009: over a WeCom limit, pause all sending, then retry
	errPermanent                 // any other API error: the message can never be sent
)

// sendResult is what WeCom answers to a send.
type sendResult struct {
	MsgID        string
	InvalidUser  string
	InvalidParty string
	InvalidTag   string
	ResponseCode string // template_card: the code that updates it once (72 h)
}

// wecomAPI is the part of the WeCom client the sender needs; wecomClient adapts
// *wecom.Client to it (kept narrow so the send path reads in one place).
type wecomAPI interface {
	GetToken(ctx context.Context, corpID, secret string) (string, time.Duration, error)
	send(ctx context.Context, kind, token string, body any) (sendResult, error)
	classify(err error) errClass
	badSecret(err error) bool
}
