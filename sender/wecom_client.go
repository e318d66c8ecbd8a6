package sender

import (
	"context"
	"errors"
	"time"

	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom"
)

// wecomClient adapts *wecom.Client to wecomAPI.
type wecomClient struct{ c *wecom.Client }

func (w wecomClient) GetToken(ctx context.Context, corpID, secret string) (string, time.Duration, error) {
	return w.c.GetToken(ctx, corpID, secret)
}

func (w wecomClient) send(ctx context.Context, kind, token string, body any) (sendResult, error) {
	var r wecom.SendResult
	var err error
	switch kind {
	case schemas.KindAppChat:
		err = w.c.SendAppChat(ctx, token, body)
	case schemas.KindCardUpdate:
		r, err = w.c.UpdateTemplateCard(ctx, token, body)
	case schemas.KindChatCreate:
		_, err = w.c.CreateAppChat(ctx, token, body)
	case schemas.KindRecall:
		err = w.c.RecallMessage(ctx, token, body)
	default:
		r, err = w.c.SendMessage(ctx, token, body)
	}
	return sendResult{MsgID: r.MsgID, InvalidUser: r.InvalidUser, InvalidParty: r.InvalidParty, InvalidTag: r.InvalidTag, ResponseCode: r.ResponseCode}, err
}

// classify maps the client's error classes to the sender's actions; 45009 and
// its siblings (frequency limits) also pause every send, not just this one.
func (w wecomClient) classify(err error) errClass {
	var ae *wecom.APIError
	switch {
	case wecom.IsTokenExpired(err):
		return errToken
	case errors.As(err, &ae) && (ae.Code == 45009 || ae.Code == 45011 || ae.Code == 45033):
		return errFrequency
	case wecom.IsRetryable(err):
		return errRetry
	case wecom.IsPermanent(err):
		return errPermanent
	}
	return errRetry // unknown failure: retrying is the safe side, bounded by max_attempts
}

// badSecret: gettoken's permanent answers (40001 wrong secret, 40013 corp id,
// 60020 IP not trusted) must not be retried in a loop.
func (w wecomClient) badSecret(err error) bool { return wecom.IsPermanent(err) }

// mpClient adapts *wecom.MPClient to wecomAPI for Official Accounts.
type mpClient struct{ c *wecom.MPClient }

func (m mpClient) GetToken(ctx context.Context, appID, secret string) (string, time.Duration, error) {
	return m.c.GetToken(ctx, appID, secret)
}

func (m mpClient) send(ctx context.Context, kind, token string, body any) (sendResult, error) {
	if kind == schemas.KindMPTemplate {
		id, err := m.c.SendTemplate(ctx, token, body)
		return sendResult{MsgID: id}, err
	}
	return sendResult{}, m.c.SendCustom(ctx, token, body)
}

// classify: the Official Account has no corp-wide frequency code worth pausing
// every app for (its 45009 is the account's daily quota), so nothing here
// pauses WeCom sends. 45015 and 45047 are permanent: only the user's next
// interaction reopens the window, which no retry can wait for.
func (m mpClient) classify(err error) errClass {
	switch {
	case wecom.IsTokenExpired(err):
		return errToken
	case wecom.IsRetryable(err):
		return errRetry
	case wecom.IsPermanent(err):
		return errPermanent
	}
	return errRetry
}

func (m mpClient) badSecret(err error) bool { return wecom.IsPermanent(err) }
