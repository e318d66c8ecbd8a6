package sim

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// maxJSONBody bounds API request bodies; WeCom's own bodies are far smaller.
const maxJSONBody = 2 << 20

type apiHandler func(r *http.Request, app *App) (map[string]any, error)

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("/cgi-bin/gettoken", s.api("gettoken", false, "", s.getToken))
	m.HandleFunc("/cgi-bin/message/send", s.api("message/send", true, http.MethodPost, s.messageSend))
	m.HandleFunc("/cgi-bin/message/update_template_card", s.api("message/update_template_card", true, http.MethodPost, s.updateTemplateCard))
	m.HandleFunc("/cgi-bin/message/recall", s.api("message/recall", true, http.MethodPost, s.messageRecall))
	m.HandleFunc("/cgi-bin/appchat/create", s.api("appchat/create", true, http.MethodPost, s.appchatCreate))
	m.HandleFunc("/cgi-bin/appchat/get", s.api("appchat/get", true, "", s.appchatGet))
	m.HandleFunc("/cgi-bin/appchat/send", s.api("appchat/send", true, http.MethodPost, s.appchatSend))
	m.HandleFunc("/cgi-bin/media/upload", s.api("media/upload", true, http.MethodPost, s.mediaUpload))
	m.HandleFunc("/cgi-bin/media/get", s.mediaGet)
	m.HandleFunc("POST /v1/audio/transcriptions", s.transcribe) // stand-in speech-to-text (media.go)
	m.HandleFunc("/cgi-bin/auth/getuserinfo", s.api("auth/getuserinfo", true, "", s.getUserInfo))
	m.HandleFunc("/cgi-bin/user/getuserinfo", s.api("auth/getuserinfo", true, "", s.getUserInfo)) // the older path, still served by WeCom
	m.HandleFunc("/cgi-bin/user/get", s.api("user/get", true, "", s.userGet))
	m.HandleFunc("/cgi-bin/meeting/create", s.api("meeting/create", true, http.MethodPost, s.meetingCreate))
	m.HandleFunc("/cgi-bin/meeting/get_info", s.api("meeting/get_info", true, http.MethodPost, s.meetingGetInfo))
	s.contactRoutes(m)
	s.mpRoutes(m)
	s.controlRoutes(m)
	s.mux = m
}

// countAndFault counts a call of the API name and answers it with the fault
// FailNext injected, if any (an HTTP status for 5xx, else an errcode through
// write); true means the call was answered.
func (s *Server) countAndFault(w http.ResponseWriter, name string, write func(http.ResponseWriter, string, map[string]any, error)) bool {
	s.mu.Lock()
	s.stats.Calls[name]++
	code, faulted := s.takeFaultLocked(name)
	s.mu.Unlock()
	if !faulted {
		return false
	}
	if code >= 500 && code <= 599 {
		http.Error(w, http.StatusText(code), code)
		return true
	}
	write(w, name, nil, apiErr(code, "injected by FailNext"))
	return true
}

// api wraps a WeCom API handler with what every call goes through, in WeCom's
// order: injected faults, method, access_token, the corp's per-API ceiling.
func (s *Server) api(name string, needToken bool, method string, h apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.countAndFault(w, name, s.writeJSON) {
			return
		}
		var (
			app  *App
			resp map[string]any
			err  error
		)
		if method == http.MethodPost && r.Method != http.MethodPost {
			err = apiErr(CodeRequirePost, "")
		}
		if err == nil && needToken {
			app, err = s.checkToken(r.URL.Query().Get("access_token"))
		}
		if err == nil && name != "gettoken" {
			err = s.checkAPILimit(name)
		}
		if err == nil {
			resp, err = h(r, app)
		}
		s.writeJSON(w, name, resp, err)
	}
}

func (s *Server) takeFaultLocked(api string) (int, bool) {
	for i := range s.faults {
		f := &s.faults[i]
		if f.left <= 0 || (f.api == "" && (api == "gettoken" || api == "token")) || (f.api != "" && f.api != api) {
			continue
		}
		f.left--
		s.stats.Faults++
		code := f.code
		if f.left == 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		return code, true
	}
	return 0, false
}

func (s *Server) writeJSON(w http.ResponseWriter, api string, resp map[string]any, err error) {
	if resp == nil {
		resp = map[string]any{}
	}
	now := s.clock.Now()
	var ae *apiError
	switch {
	case err == nil:
		resp["errcode"] = 0
		if _, ok := resp["errmsg"]; !ok {
			resp["errmsg"] = "ok"
		}
	case errors.As(err, &ae):
		resp = map[string]any{"errcode": ae.code, "errmsg": errmsg(ae.code, ae.detail, now.Format("20060102150405")+"_sim_"+randomString(8))}
		s.mu.Lock()
		s.stats.Errors[strconv.Itoa(ae.code)]++
		s.mu.Unlock()
		s.log.Debug("sim: api error", zap.String("api", api), zap.Int("errcode", ae.code), zap.String("detail", ae.detail))
	default:
		resp = map[string]any{"errcode": CodeBusy, "errmsg": errmsg(CodeBusy, err.Error(), "sim")}
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(resp)
}

func (s *Server) checkToken(v string) (*App, error) {
	if v == "" {
		return nil, apiErr(CodeMissingToken, "")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.byToken[v]
	if t == nil {
		return nil, apiErr(CodeInvalidToken, "")
	}
	if !s.clock.Now().Before(t.expires) {
		return nil, apiErr(CodeTokenExpired, "")
	}
	return s.appsByName[t.app], nil
}

func (s *Server) checkAPILimit(api string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	w := win(s.apiWin, api)
	if w.over(now, time.Minute, s.cfg.Limits.APIPerMinute) {
		return apiErr(CodeFreqLimit, "more than %d calls of %s in a minute", s.cfg.Limits.APIPerMinute, api)
	}
	if w.over(now, time.Hour, s.cfg.Limits.APIPerHour) {
		return apiErr(CodeFreqLimit, "more than %d calls of %s in an hour", s.cfg.Limits.APIPerHour, api)
	}
	w.add(now, time.Hour)
	return nil
}

func (s *Server) getToken(r *http.Request, _ *App) (map[string]any, error) {
	q := r.URL.Query()
	corpID, secret := q.Get("corpid"), q.Get("corpsecret")
	switch {
	case corpID == "":
		return nil, apiErr(CodeMissingCorpID, "")
	case !s.knownCorp(corpID):
		return nil, apiErr(CodeInvalidCorpID, "")
	case secret == "":
		return nil, apiErr(CodeMissingSecret, "")
	}
	app := s.appsBySecret[secret]
	if app == nil || s.corpOf(app) != corpID { // a secret is good only with its own corp's id
		return nil, apiErr(CodeInvalidSecret, "")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	t := s.tokens[app.Name]
	if t == nil || !now.Before(t.expires) {
		t = &token{app: app.Name, value: randomString(64), expires: now.Add(s.cfg.TokenLifetime)}
		s.tokens[app.Name] = t
		s.byToken[t.value] = t
	}
	s.stats.GetToken[app.Name]++
	left := t.expires.Sub(now)
	secs := int64((left + time.Second - 1) / time.Second)
	return map[string]any{"access_token": t.value, "expires_in": secs}, nil
}

// readJSON reads a JSON object body into its top-level fields.
func readJSON(r *http.Request) (map[string]json.RawMessage, []byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody+1))
	if err != nil {
		return nil, nil, apiErr(CodeBadJSON, "reading body: %v", err)
	}
	if len(body) > maxJSONBody {
		return nil, nil, apiErr(CodeContentTooLarge, "body larger than %d bytes", maxJSONBody)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, nil, apiErr(CodeBadJSON, "body is not a JSON object")
	}
	return m, body, nil
}

// parseAgentID accepts agentid as a number or a string of digits, as WeCom does.
func parseAgentID(raw json.RawMessage) (int64, error) {
	v := strings.TrimSpace(string(raw))
	if v == "" || v == "null" || v == `""` {
		return 0, apiErr(CodeMissingAgentID, "")
	}
	v = strings.Trim(v, `"`)
	id, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, apiErr(CodeInvalidAgentID, "agentid %s is not a number", string(raw))
	}
	return id, nil
}

// checkAgent checks that the body's agentid is the token's app.
func (s *Server) checkAgent(m map[string]json.RawMessage, app *App) error {
	id, err := parseAgentID(m["agentid"])
	if err != nil {
		return err
	}
	other := s.appsByAgent[id]
	if other == nil {
		return apiErr(CodeInvalidAgentID, "no app with agentid %d", id)
	}
	if other != app {
		return apiErr(CodeNotOwnAgent, "the access_token belongs to agentid %d", app.AgentID)
	}
	return nil
}

func str(m map[string]json.RawMessage, k string) (string, error) {
	raw, ok := m[k]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", apiErr(CodeInvalidParameter, "%s must be a string", k)
	}
	return v, nil
}

func intField(m map[string]json.RawMessage, k string) (int64, error) {
	raw, ok := m[k]
	if !ok || string(raw) == "null" {
		return 0, nil
	}
	v := strings.Trim(strings.TrimSpace(string(raw)), `"`)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, apiErr(CodeInvalidParameter, "%s must be a number", k)
	}
	return n, nil
}

// splitIDs splits WeCom's "a|b|c" lists.
func splitIDs(s string) []string {
	var out []string
	for _, p := range strings.Split(s, "|") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// resolveLocked turns touser/toparty/totag into the member list, WeCom style:
// unknown entries are reported, not fatal. Departments, tags and @all are
// those of corp (the sending app's); touser may name any simulated member.
func (s *Server) resolveLocked(corp, touser, toparty, totag string) (users, badUsers, badParties, badTags []string, err error) {
	us, ps, ts := splitIDs(touser), splitIDs(toparty), splitIDs(totag)
	switch {
	case len(us) > 1000:
		return nil, nil, nil, nil, apiErr(CodeInvalidUserListSize, "touser has %d members, at most 1000", len(us))
	case len(ps) > 100:
		return nil, nil, nil, nil, apiErr(CodePartyListSize, "toparty has %d parties, at most 100", len(ps))
	case len(ts) > 100:
		return nil, nil, nil, nil, apiErr(CodeTagListSize, "totag has %d tags, at most 100", len(ts))
	}
	seen := map[string]bool{}
	addUser := func(id string) {
		if !seen[id] {
			seen[id] = true
			users = append(users, id)
		}
	}
	own := s.bookOf(corp)
	if len(us) == 1 && us[0] == "@all" {
		for _, u := range own.list {
			addUser(u.UserID)
		}
		return users, nil, nil, nil, nil
	}
	for _, id := range us {
		if u, ok := s.book().users[lower(id)]; ok {
			addUser(u.UserID)
		} else {
			badUsers = append(badUsers, lower(id))
		}
	}
	groups := func(ids []string, of func(User) []int64) (bad []string) {
		for _, p := range ids {
			n, perr := strconv.ParseInt(p, 10, 64)
			found := false
			for _, u := range own.list {
				if perr == nil && contains(of(u), n) {
					addUser(u.UserID)
					found = true
				}
			}
			if !found {
				bad = append(bad, p)
			}
		}
		return bad
	}
	badParties = groups(ps, func(u User) []int64 { return u.Department })
	badTags = groups(ts, func(u User) []int64 { return u.Tags })
	return users, badUsers, badParties, badTags, nil
}

func contains(xs []int64, x int64) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// Which per-member limit a delivery counts against.
const (
	limitNone   = iota // card updates
	limitMember        // message/send: Limits.MemberPerMinute and MemberPerHour
	limitChat          // appchat/send: Limits.ChatMemberPerMinute
)

// deliverLocked records base for each user unless a per-member limit drops it.
func (s *Server) deliverLocked(base SentMessage, users []string, limit int) {
	now := base.Time
	l := s.cfg.Limits
	for _, u := range users {
		m := base
		m.User = u
		reason := ""
		switch limit {
		case limitChat:
			w := win(s.chatMem, lower(u))
			if w.over(now, time.Minute, l.ChatMemberPerMinute) {
				reason = DropChatMemberMinute
			} else {
				w.add(now, time.Minute)
			}
		case limitMember:
			w := win(s.member, base.App+"|"+lower(u))
			switch {
			case w.over(now, time.Minute, l.MemberPerMinute):
				reason = DropMemberMinute
			case w.over(now, time.Hour, l.MemberPerHour):
				reason = DropMemberHour
			default:
				w.add(now, time.Hour)
			}
		}
		s.seq++
		m.Seq = s.seq
		if reason != "" {
			s.dropLocked(m, reason)
			continue
		}
		s.sent = append(s.sent, m)
		s.stats.Sent++
	}
	s.notifyLocked()
}

func (s *Server) dropLocked(m SentMessage, reason string) {
	s.dropped = append(s.dropped, DroppedMessage{SentMessage: m, Reason: reason})
	s.stats.Dropped[reason]++
	// Never the body at info level: it may carry payslips.
	s.log.Debug("sim: message dropped", zap.String("app", m.App), zap.String("user", m.User), zap.String("reason", reason))
}
