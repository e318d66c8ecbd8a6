package sim

import (
	"net/http"
	"time"
)

// recallWindow is how long after message/send WeCom lets an app recall its
// message ("撤回应用消息": only messages sent in the last 24 hours).
const recallWindow = 24 * time.Hour

// messageRecall serves message/recall: {"msgid": "..."} takes back a message
// the app sent with message/send in the last 24 hours.
//
// Errcodes: WeCom's document (developer.work.weixin.qq.com/document/path/94867)
// names the 24-hour rule but no dedicated errcode could be confirmed here, so an
// unknown msgid, another app's msgid, a second recall and a recall past the
// window all answer 40058 (invalid parameter) with a hint naming the cause.
func (s *Server) messageRecall(r *http.Request, app *App) (map[string]any, error) {
	m, _, err := readJSON(r)
	if err != nil {
		return nil, err
	}
	msgID, err := str(m, "msgid")
	if err != nil {
		return nil, err
	}
	if msgID == "" {
		return nil, apiErr(CodeInvalidParameter, "msgid is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	var sentAt time.Time
	found := false
	for _, sm := range s.sent {
		if sm.MsgID == msgID && sm.API == "message/send" && sm.App == app.Name {
			sentAt, found = sm.Time, true
			break
		}
	}
	switch {
	case !found:
		return nil, apiErr(CodeInvalidParameter, "msgid %q was not sent by this app", msgID)
	case now.Sub(sentAt) > recallWindow:
		return nil, apiErr(CodeInvalidParameter, "msgid %q was sent more than 24 hours ago and can no longer be recalled", msgID)
	}
	if _, done := s.recalled[msgID]; done {
		return nil, apiErr(CodeInvalidParameter, "msgid %q has already been recalled", msgID)
	}
	if s.recalled == nil {
		s.recalled = map[string]time.Time{}
	}
	s.recalled[msgID] = now
	s.notifyLocked()
	return map[string]any{}, nil
}

// Recalled reports whether message/recall took back msgID, and when.
func (s *Server) Recalled(msgID string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.recalled[msgID]
	return t, ok
}
