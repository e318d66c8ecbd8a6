package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom"
)

// meetingRequest is POST /api/v1/meetings: a WeCom meeting and its join card
// in one call (the seed's one-click video call).
type meetingRequest = schemas.MeetingRequest

type meetingCreated struct {
	MeetingID string `json:"meetingid"`
	Link      string `json:"meeting_link"`
	Code      string `json:"meeting_code"`
	MessageID string `json:"message_id"`
}

func (g *Gateway) createMeeting(w http.ResponseWriter, r *http.Request) {
	key, body, ok := g.readAPIRequest(w, r)
	if !ok {
		return
	}
	out, err := g.meeting(r, key, body)
	g.metrics.pushes.WithLabelValues(key.Name, "meeting", resultLabel(err)).Inc()
	if err != nil {
		writePushError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (g *Gateway) meeting(r *http.Request, key *APIKey, body []byte) (meetingCreated, error) {
	if err := validateBody("meeting.v1", body); err != nil {
		return meetingCreated{}, err
	}
	var req meetingRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return meetingCreated{}, badField("", "%v", err)
	}
	app, ok := g.cfg.WeCom.App(req.App)
	switch {
	case req.App == "" || !ok:
		return meetingCreated{}, badField("app", "no app named %q", req.App)
	case !keyAllows(key, req.App):
		return meetingCreated{}, &pushError{status: http.StatusForbidden, field: "app", msg: fmt.Sprintf("API key %q may not use app %q", key.Name, req.App)}
	case strings.TrimSpace(req.Title) == "":
		return meetingCreated{}, badField("title", "is required")
	case req.Admin == "":
		return meetingCreated{}, badField("admin_userid", "is required")
	case len(req.Invitees) == 0 && req.ChatID == "":
		return meetingCreated{}, badField("invitees", "list at least one member (or give chatid)")
	}
	start := g.now()
	if req.Start != "" {
		t, err := time.Parse(time.RFC3339, req.Start)
		if err != nil || t.Before(g.now().Add(-time.Minute)) {
			return meetingCreated{}, badField("start", "want an RFC 3339 time not in the past, got %q", req.Start)
		}
		start = t
	}
	dur := time.Hour
	if req.Duration != "" {
		d, err := time.ParseDuration(req.Duration)
		if err != nil || d < 5*time.Minute || d > 24*time.Hour {
			return meetingCreated{}, badField("duration", "want 5m to 24h, got %q", req.Duration)
		}
		dur = d
	}
	priority := req.Priority
	if priority == "" {
		priority = schemas.PriorityUrgent // people are waiting in the room
	}
	m := wecom.Meeting{AdminUserID: req.Admin, Title: req.Title, MeetingStart: start.Unix(),
		MeetingDuration: int64(dur / time.Second), Description: req.Description, AgentID: app.AgentID}
	m.Invitees.UserID = req.Invitees
	id, link, code, err := g.createWeComMeeting(r, app, m)
	if err != nil {
		return meetingCreated{}, err
	}
	card := map[string]any{"msgtype": "textcard", "textcard": map[string]any{
		"title":       "视频会议：" + req.Title,
		"description": fmt.Sprintf("%s 开始，%d 分钟\n会议号 %s\n%s", start.In(time.FixedZone("CST", 8*3600)).Format("01-02 15:04"), int(dur/time.Minute), code, req.Description),
		"url":         link, "btntxt": "入会",
	}}
	kind := schemas.KindMessage
	if req.ChatID != "" {
		card["chatid"] = req.ChatID
		kind = schemas.KindAppChat
	} else {
		card["touser"] = strings.Join(append([]string{req.Admin}, req.Invitees...), "|")
	}
	cardBody, _ := json.Marshal(card)
	acc, err := g.queue(callerTrace(r), key, req.App, kind, priority, "", "", cardBody)
	if err != nil {
		return meetingCreated{}, err
	}
	g.log.Info("meeting created", zap.String("client", key.Name), zap.String("app", req.App), zap.String("meetingid", id),
		zap.Int("invitees", len(req.Invitees)), zap.String("message", acc.ID))
	return meetingCreated{MeetingID: id, Link: link, Code: code, MessageID: acc.ID}, nil
}

// createWeComMeeting creates the meeting and reads its join link, with the
// app's shared token (refreshed once when WeCom says it expired).
func (g *Gateway) createWeComMeeting(r *http.Request, app wecom.AppConfig, m wecom.Meeting) (id, link, code string, err error) {
	for fresh := range 2 {
		var tok string
		if tok, err = g.appToken(r.Context(), app, fresh == 1); err != nil {
			return "", "", "", &pushError{status: http.StatusServiceUnavailable, msg: err.Error()}
		}
		if id, err = g.wecom.CreateMeeting(r.Context(), tok, m); err == nil {
			link, code, err = g.wecom.MeetingLink(r.Context(), tok, id)
		}
		if err == nil || !errors.Is(err, wecom.ErrTokenExpired) {
			break
		}
	}
	var api *wecom.APIError
	switch {
	case err == nil:
		return id, link, code, nil
	case errors.As(err, &api) && !errors.Is(err, wecom.ErrRetryable):
		// WeCom refused the meeting itself (an unknown member, a bad time): the caller's to fix.
		return "", "", "", &pushError{status: http.StatusBadRequest, msg: fmt.Sprintf("WeCom refused the meeting: %d %s", api.Code, api.Msg)}
	default:
		return "", "", "", &pushError{status: http.StatusServiceUnavailable, msg: "WeCom unavailable, retry: " + err.Error()}
	}
}
