package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"
)

// Meeting is a WeCom meeting created through meeting/create.
type Meeting struct {
	ID          string    `json:"meetingid"`
	App         string    `json:"app"`
	Admin       string    `json:"admin_userid"`
	Title       string    `json:"title"`
	Start       time.Time `json:"meeting_start"`
	Duration    int64     `json:"meeting_duration"` // seconds
	Description string    `json:"description,omitempty"`
	Invitees    []string  `json:"invitees"`
	Code        string    `json:"meeting_code"`
	Link        string    `json:"meeting_link"`
}

type meetingBody struct {
	AdminUserID     string `json:"admin_userid"`
	Title           string `json:"title"`
	MeetingStart    int64  `json:"meeting_start"`
	MeetingDuration int64  `json:"meeting_duration"`
	Description     string `json:"description"`
	AgentID         *int64 `json:"agentid"`
	Invitees        struct {
		UserID []string `json:"userid"`
	} `json:"invitees"`
}

// meetingCreate is meeting/create: the admin and the invitees must be
// members, the start a unix time not in the past, the duration 300 s to 24 h.
func (s *Server) meetingCreate(r *http.Request, app *App) (map[string]any, error) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, apiErr(CodeBadJSON, "%v", err)
	}
	var b meetingBody
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, apiErr(CodeBadJSON, "%v", err)
	}
	switch {
	case b.AdminUserID == "":
		return nil, apiErr(CodeMissingUserID, "admin_userid")
	case b.Title == "":
		return nil, apiErr(CodeMissingTitle, "")
	case b.MeetingDuration < 300 || b.MeetingDuration > 86400:
		return nil, apiErr(CodeInvalidParameter, "meeting_duration %d, want 300..86400", b.MeetingDuration)
	case b.AgentID != nil && *b.AgentID != app.AgentID:
		return nil, apiErr(CodeNotOwnAgent, "")
	}
	now := s.clock.Now()
	if b.MeetingStart < now.Add(-time.Minute).Unix() {
		return nil, apiErr(CodeInvalidParameter, "meeting_start is in the past")
	}
	if _, ok := s.book().users[lower(b.AdminUserID)]; !ok {
		return nil, apiErr(CodeUserNotFound, "%q", b.AdminUserID)
	}
	for _, u := range b.Invitees.UserID {
		if _, ok := s.book().users[lower(u)]; !ok {
			return nil, apiErr(CodeUserNotFound, "invitee %q", u)
		}
	}
	s.mu.Lock()
	s.seq++
	id := fmt.Sprintf("hybvHrDAAA%08d", s.seq)
	code := fmt.Sprintf("%09d", 100000000+s.seq)
	m := &Meeting{ID: id, App: app.Name, Admin: b.AdminUserID, Title: b.Title, Start: time.Unix(b.MeetingStart, 0).UTC(),
		Duration: b.MeetingDuration, Description: b.Description, Invitees: append([]string(nil), b.Invitees.UserID...),
		Code: code, Link: "https://meeting.tencent.com/dm/" + code}
	if s.meetings == nil {
		s.meetings = map[string]*Meeting{}
	}
	s.meetings[id] = m
	s.notifyLocked()
	s.mu.Unlock()
	return map[string]any{"meetingid": id, "excess_users": []string{}}, nil
}

// meetingGetInfo is meeting/get_info: the meeting's code and join link.
func (s *Server) meetingGetInfo(r *http.Request, app *App) (map[string]any, error) {
	var b struct {
		MeetingID string `json:"meetingid"`
	}
	if raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<16)); err != nil || json.Unmarshal(raw, &b) != nil {
		return nil, apiErr(CodeBadJSON, "")
	}
	s.mu.Lock()
	m, ok := s.meetings[b.MeetingID]
	s.mu.Unlock()
	if !ok || m.App != app.Name {
		return nil, apiErr(CodeInvalidParameter, "meetingid %q", b.MeetingID)
	}
	return map[string]any{
		"admin_userid": m.Admin, "title": m.Title, "meeting_start": m.Start.Unix(), "meeting_duration": m.Duration,
		"description": m.Description, "meeting_code": m.Code, "meeting_link": m.Link,
		"attendees": map[string]any{"member": m.Invitees},
	}, nil
}

// Meetings are the meetings created so far, oldest first.
func (s *Server) Meetings() []Meeting {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Meeting, 0, len(s.meetings))
	for _, m := range s.meetings {
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
