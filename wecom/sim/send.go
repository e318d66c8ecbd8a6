package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Message types message/send accepts, and the subset appchat/send accepts.
var (
	sendTypes = map[string]bool{"text": true, "markdown": true, "textcard": true, "news": true, "mpnews": true,
		"file": true, "image": true, "voice": true, "video": true, "template_card": true, "miniprogram_notice": true}
	chatTypes = map[string]bool{"text": true, "markdown": true, "textcard": true, "news": true, "mpnews": true,
		"file": true, "image": true, "voice": true, "video": true}
	cardTypes = map[string]bool{"text_notice": true, "news_notice": true, "button_interaction": true,
		"vote_interaction": true, "multiple_interaction": true}
	// interactive cards answer with a response_code and need a task_id.
	interactiveCards = map[string]bool{"button_interaction": true, "vote_interaction": true, "multiple_interaction": true}
)

const (
	maxTextBytes         = 2048
	mediaLifetime        = 72 * time.Hour // temporary media live 3 days
	responseCodeLifetime = 72 * time.Hour
	maxDupInterval       = 4 * time.Hour
	defaultDupInterval   = 1800 * time.Second
)

var cst = time.FixedZone("CST", 8*3600)

type object = map[string]any

func getStr(o object, k string) string {
	v, _ := o[k].(string)
	return v
}

func getObj(o object, k string) object {
	v, _ := o[k].(map[string]any)
	return v
}

func getList(o object, k string) []any {
	v, _ := o[k].([]any)
	return v
}

// validateContentLocked checks the msgtype's object the way WeCom does and returns
// a short summary of it (the text, or a title) for SentMessage.Content.
func (s *Server) validateContentLocked(msgtype string, raw json.RawMessage) (string, error) {
	var o object
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &o); err != nil {
			return "", apiErr(CodeBadJSON, "%s must be an object", msgtype)
		}
	}
	if o == nil {
		o = object{}
	}
	switch msgtype {
	case "text", "markdown":
		c := getStr(o, "content")
		if strings.TrimSpace(c) == "" {
			return "", apiErr(CodeEmptyContent, "%s.content is empty", msgtype)
		}
		if len(c) > maxTextBytes {
			return "", apiErr(CodeContentTooLarge, "%s.content is %d bytes, at most %d", msgtype, len(c), maxTextBytes)
		}
		return c, nil
	case "textcard":
		t, d, u := getStr(o, "title"), getStr(o, "description"), getStr(o, "url")
		switch {
		case t == "":
			return "", apiErr(CodeMissingTitle, "textcard.title")
		case d == "":
			return "", apiErr(CodeMissingDescription, "textcard.description")
		case u == "":
			return "", apiErr(CodeMissingURL, "textcard.url")
		case len(t) > 128:
			return "", apiErr(CodeContentTooLarge, "textcard.title is longer than 128 bytes")
		case len(d) > 512:
			return "", apiErr(CodeContentTooLarge, "textcard.description is longer than 512 bytes")
		}
		return t, nil
	case "news", "mpnews":
		arts := getList(o, "articles")
		if len(arts) == 0 {
			return "", apiErr(CodeMissingTitle, "%s.articles is empty", msgtype)
		}
		if len(arts) > 8 {
			return "", apiErr(CodeTooManyArticles, "%s has %d articles, at most 8", msgtype, len(arts))
		}
		for i, a := range arts {
			ao, _ := a.(map[string]any)
			if getStr(ao, "title") == "" {
				return "", apiErr(CodeMissingTitle, "%s.articles[%d].title", msgtype, i)
			}
			if msgtype == "news" {
				if getStr(ao, "url") == "" && (getStr(ao, "appid") == "" || getStr(ao, "pagepath") == "") {
					return "", apiErr(CodeMissingURL, "news.articles[%d].url (or appid and pagepath)", i)
				}
				continue
			}
			if err := s.checkMediaLocked(getStr(ao, "thumb_media_id"), "image", "mpnews.articles[].thumb_media_id"); err != nil {
				return "", err
			}
			if getStr(ao, "content") == "" {
				return "", apiErr(CodeEmptyContent, "mpnews.articles[%d].content", i)
			}
		}
		first, _ := arts[0].(map[string]any)
		return getStr(first, "title"), nil
	case "image", "voice", "video", "file":
		id := getStr(o, "media_id")
		want := msgtype
		if msgtype == "file" {
			want = "" // a file message may carry any uploaded media
		}
		if err := s.checkMediaLocked(id, want, msgtype+".media_id"); err != nil {
			return "", err
		}
		if m := s.media[id]; m != nil && m.Filename != "" {
			return m.Filename, nil
		}
		return id, nil
	case "template_card":
		ct := getStr(o, "card_type")
		if !cardTypes[ct] {
			return "", apiErr(CodeInvalidParameter, "template_card.card_type %q is not one of text_notice, news_notice, button_interaction, vote_interaction, multiple_interaction", ct)
		}
		if (interactiveCards[ct] || o["action_menu"] != nil) && getStr(o, "task_id") == "" {
			return "", apiErr(CodeInvalidParameter, "template_card.task_id is required for %s cards and action menus", ct)
		}
		title := getStr(getObj(o, "main_title"), "title")
		switch ct {
		case "text_notice", "news_notice":
			if title == "" && getStr(o, "sub_title_text") == "" {
				return "", apiErr(CodeInvalidParameter, "template_card.main_title.title or sub_title_text is required")
			}
			if getObj(o, "card_action") == nil {
				return "", apiErr(CodeInvalidParameter, "template_card.card_action is required for %s", ct)
			}
		case "button_interaction":
			if n := len(getList(o, "button_list")); n == 0 || n > 6 {
				return "", apiErr(CodeInvalidParameter, "template_card.button_list must have 1 to 6 buttons, has %d", n)
			}
		case "vote_interaction":
			if getObj(o, "checkbox") == nil || getObj(o, "submit_button") == nil {
				return "", apiErr(CodeInvalidParameter, "template_card.checkbox and submit_button are required")
			}
		case "multiple_interaction":
			if len(getList(o, "select_list")) == 0 || getObj(o, "submit_button") == nil {
				return "", apiErr(CodeInvalidParameter, "template_card.select_list and submit_button are required")
			}
		}
		if title == "" {
			title = getStr(o, "sub_title_text")
		}
		return title, nil
	case "miniprogram_notice":
		if getStr(o, "appid") == "" {
			return "", apiErr(CodeInvalidParameter, "miniprogram_notice.appid is required")
		}
		if getStr(o, "title") == "" {
			return "", apiErr(CodeMissingTitle, "miniprogram_notice.title")
		}
		return getStr(o, "title"), nil
	}
	return "", apiErr(CodeInvalidMsgType, "%q", msgtype)
}

// checkMediaLocked checks that id names live uploaded media of type want ("" any).
func (s *Server) checkMediaLocked(id, want, field string) error {
	if id == "" {
		return apiErr(CodeMissingMediaID, "%s", field)
	}
	m := s.media[id]
	if m == nil || mediaExpired(s.clock.Now(), m.CreatedAt) {
		return apiErr(CodeInvalidMediaID, "%s %q was not uploaded or has expired", field, id)
	}
	if want != "" && m.Type != want {
		return apiErr(CodeInvalidMediaID, "%s %q is a %s, not a %s", field, id, m.Type, want)
	}
	return nil
}

func (s *Server) messageSend(r *http.Request, app *App) (map[string]any, error) {
	m, body, err := readJSON(r)
	if err != nil {
		return nil, err
	}
	if err := s.checkAgent(m, app); err != nil {
		return nil, err
	}
	msgtype, err := str(m, "msgtype")
	if err != nil {
		return nil, err
	}
	if !sendTypes[msgtype] {
		return nil, apiErr(CodeInvalidMsgType, "msgtype %q", msgtype)
	}
	touser, err1 := str(m, "touser")
	toparty, err2 := str(m, "toparty")
	totag, err3 := str(m, "totag")
	dupCheck, err4 := intField(m, "enable_duplicate_check")
	dupSecs, err5 := intField(m, "duplicate_check_interval")
	for _, e := range []error{err1, err2, err3, err4, err5} {
		if e != nil {
			return nil, e
		}
	}

	var bodyHash string
	if dupCheck == 1 || s.cfg.Limits.DuplicateCheck == DuplicateCheckAll { // before the lock: decoding and encoding is the costly part
		bodyHash = contentHash(body)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	content, err := s.validateContentLocked(msgtype, m[msgtype])
	if err != nil {
		return nil, err
	}
	users, badU, badP, badT, err := s.resolveLocked(s.corpOf(app), touser, toparty, totag)
	if err != nil {
		return nil, err
	}
	resp := map[string]any{}
	for k, v := range map[string][]string{"invaliduser": badU, "invalidparty": badP, "invalidtag": badT} {
		if len(v) > 0 {
			resp[k] = strings.Join(v, "|")
		}
	}
	if len(users) == 0 {
		return nil, apiErr(CodeAllInvalid, "no valid recipient in touser %q, toparty %q, totag %q", touser, toparty, totag)
	}
	base := SentMessage{API: "message/send", App: app.Name, AgentID: app.AgentID, MsgType: msgtype,
		Content: content, Body: json.RawMessage(body), Time: now}
	dupKey := app.Name + "|" + bodyHash
	if dupCheck == 1 {
		interval := time.Duration(dupSecs) * time.Second
		if interval <= 0 {
			interval = defaultDupInterval
		}
		if interval > maxDupInterval {
			interval = maxDupInterval
		}
		if d, ok := s.dups[dupKey]; ok && now.Sub(d.at) < interval {
			s.stats.Duplicates++
			base.MsgID = d.msgID
			for _, u := range users {
				s.seq++
				dm := base
				dm.User, dm.Seq = u, s.seq
				s.dropLocked(dm, DropDuplicate)
			}
			s.notifyLocked()
			resp["msgid"] = d.msgID
			return resp, nil
		}
	}
	if dupCheck == 1 || s.cfg.Limits.DuplicateCheck == DuplicateCheckAll {
		defer func() { s.rememberLocked(dupKey, dupEntry{msgID: base.MsgID, at: now}) }()
	}
	if q := s.cfg.Limits.AppDailyRecipients; q >= 0 {
		day := now.In(cst).Format("2006-01-02")
		dc := s.daily[app.Name]
		if dc == nil || dc.day != day {
			dc = &dayCount{day: day}
			s.daily[app.Name] = dc
		}
		if dc.n+len(users) > q {
			return nil, apiErr(CodeFreqLimit, "app %s would exceed its daily quota of %d recipients", app.Name, q)
		}
		dc.n += len(users)
	}

	base.MsgID = randomString(48)
	resp["msgid"] = base.MsgID
	if msgtype == "template_card" {
		var card object
		_ = json.Unmarshal(m["template_card"], &card)
		if interactiveCards[getStr(card, "card_type")] || card["action_menu"] != nil {
			code := s.issueResponseCodeLocked(app.Name, base.MsgID, users)
			base.ResponseCode = code
			resp["response_code"] = code
		}
	}
	s.deliverLocked(base, users, limitMember)
	return resp, nil
}

// contentHash is canonicalHash of a message/send body without the fields
// that say how to send it (the duplicate-check flags): what the check compares.
func contentHash(body []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return canonicalHash(body)
	}
	delete(m, "enable_duplicate_check")
	delete(m, "duplicate_check_interval")
	b, _ := json.Marshal(m)
	return canonicalHash(b)
}

// rememberLocked keeps e for the duplicate check, forgetting entries older
// than the longest interval WeCom allows now and then.
func (s *Server) rememberLocked(key string, e dupEntry) {
	s.dups[key] = e
	if len(s.dups)%4096 == 0 {
		for k, d := range s.dups {
			if e.at.Sub(d.at) > maxDupInterval {
				delete(s.dups, k)
			}
		}
	}
}

// canonicalHash hashes a JSON document independent of key order and spacing,
// so "the same request json" means the same content, as WeCom's duplicate check does.
func canonicalHash(body []byte) string {
	var v any
	if err := json.Unmarshal(body, &v); err == nil {
		if b, err := json.Marshal(v); err == nil {
			body = b
		}
	}
	h := sha256.Sum256(body)
	return hex.EncodeToString(h[:])
}

func (s *Server) issueResponseCodeLocked(app, msgID string, users []string) string {
	code := randomString(43)
	s.cards[code] = &cardCode{app: app, msgID: msgID, users: append([]string(nil), users...), issued: s.clock.Now()}
	return code
}

// IssueResponseCode returns a fresh response_code for a card of app seen by user,
// as WeCom puts in a template_card_event callback. SendEvent calls it when the
// event has none.
func (s *Server) IssueResponseCode(app, user string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issueResponseCodeLocked(app, "", []string{user})
}

// IssueClickCode is the response_code of a click by user on the card of app
// with taskID, as WeCom puts in the template_card_event callback: like WeCom's,
// it may update that card for everyone who received it (the users of the
// latest message/send that carried the card), not only for the clicker.
func (s *Server) IssueClickCode(app, user, taskID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	users := []string{user}
	msgID := ""
	for i := len(s.sent) - 1; i >= 0; i-- {
		m := s.sent[i]
		if m.API != "message/send" || m.MsgType != "template_card" || m.App != app || !strings.EqualFold(m.User, user) {
			continue
		}
		if taskID != "" && cardTaskID(m.Body) != taskID {
			continue
		}
		msgID, users = m.MsgID, nil
		for _, o := range s.sent {
			if o.MsgID == msgID && o.API == "message/send" {
				users = append(users, o.User)
			}
		}
		break
	}
	return s.issueResponseCodeLocked(app, msgID, users)
}

func cardTaskID(body json.RawMessage) string {
	var b struct {
		TemplateCard struct {
			TaskID string `json:"task_id"`
		} `json:"template_card"`
	}
	_ = json.Unmarshal(body, &b)
	return b.TemplateCard.TaskID
}

func (s *Server) updateTemplateCard(r *http.Request, app *App) (map[string]any, error) {
	m, body, err := readJSON(r)
	if err != nil {
		return nil, err
	}
	if err := s.checkAgent(m, app); err != nil {
		return nil, err
	}
	code, err := str(m, "response_code")
	if err != nil {
		return nil, err
	}
	var userIDs []string
	if raw, ok := m["userids"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &userIDs); err != nil {
			return nil, apiErr(CodeInvalidParameter, "userids must be a list of strings")
		}
	}
	atAll, err := intField(m, "atall")
	if err != nil {
		return nil, err
	}
	var button, card object
	_ = json.Unmarshal(m["button"], &button)
	_ = json.Unmarshal(m["template_card"], &card)
	msgtype, content := "", ""
	switch {
	case card != nil:
		msgtype = "template_card"
	case getStr(button, "replace_name") != "":
		msgtype, content = "button", getStr(button, "replace_name")
	default:
		return nil, apiErr(CodeInvalidParameter, "either button.replace_name or template_card is required")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	if card != nil {
		raw, _ := json.Marshal(card)
		if content, err = s.validateContentLocked("template_card", raw); err != nil {
			return nil, err
		}
	}
	if code == "" {
		return nil, apiErr(CodeInvalidParameter, "response_code is required")
	}
	cc := s.cards[code]
	switch {
	case cc == nil || cc.app != app.Name:
		return nil, apiErr(CodeInvalidParameter, "response_code was not issued to this app")
	case cc.used:
		return nil, apiErr(CodeInvalidParameter, "response_code has already been used (each code updates a card once)")
	case now.Sub(cc.issued) > responseCodeLifetime:
		return nil, apiErr(CodeInvalidParameter, "response_code has expired (valid 72 hours)")
	}
	var users, invalid []string
	if atAll == 1 || len(userIDs) == 0 {
		users = cc.users
	} else {
		for _, u := range userIDs {
			found := false
			for _, cu := range cc.users {
				if strings.EqualFold(cu, u) {
					users, found = append(users, cu), true
					break
				}
			}
			if !found {
				invalid = append(invalid, lower(u))
			}
		}
	}
	if len(users) == 0 {
		return nil, apiErr(CodeAllInvalid, "none of userids received the card")
	}
	cc.used = true
	s.deliverLocked(SentMessage{API: "message/update_template_card", App: app.Name, AgentID: app.AgentID,
		MsgID: cc.msgID, MsgType: msgtype, Content: content, ResponseCode: code, Body: body, Time: now}, users, limitNone)
	if invalid == nil {
		invalid = []string{}
	}
	return map[string]any{"invaliduser": invalid}, nil
}

var chatIDRe = regexp.MustCompile(`^[0-9A-Za-z]{1,32}$`)

func (s *Server) appchatCreate(r *http.Request, app *App) (map[string]any, error) {
	m, _, err := readJSON(r)
	if err != nil {
		return nil, err
	}
	name, err1 := str(m, "name")
	owner, err2 := str(m, "owner")
	chatID, err3 := str(m, "chatid")
	for _, e := range []error{err1, err2, err3} {
		if e != nil {
			return nil, e
		}
	}
	var list []string
	if err := json.Unmarshal(m["userlist"], &list); err != nil {
		return nil, apiErr(CodeChatMemberCount, "userlist must be a list of 2 to 2000 userids")
	}
	if utf8.RuneCountInString(name) > 50 {
		return nil, apiErr(CodeInvalidChatName, "name longer than 50 characters")
	}
	if len(list) < 2 || len(list) > 2000 {
		return nil, apiErr(CodeChatMemberCount, "userlist has %d members, needs 2 to 2000", len(list))
	}
	if chatID != "" && !chatIDRe.MatchString(chatID) {
		return nil, apiErr(CodeInvalidChatID, "chatid must be 1-32 of 0-9 a-z A-Z")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	members := make([]string, 0, len(list))
	for _, id := range list {
		u, ok := s.book().users[lower(id)]
		if !ok {
			return nil, apiErr(CodeInvalidChatMember, "%q is not a member of the corp", id)
		}
		members = append(members, u.UserID)
	}
	if owner == "" {
		owner = members[0]
	} else if u, ok := s.book().users[lower(owner)]; ok {
		owner = u.UserID
	} else {
		return nil, apiErr(CodeInvalidChatOwner, "%q is not a member of the corp", owner)
	}
	if chatID == "" {
		chatID = "wr" + randomString(30)
	}
	if _, exists := s.chats[chatID]; exists {
		return nil, apiErr(CodeInvalidChatID, "chatid %q already exists", chatID)
	}
	s.chats[chatID] = &chat{ChatID: chatID, Name: name, Owner: owner, UserList: members, app: app.Name}
	return map[string]any{"chatid": chatID}, nil
}

func (s *Server) chatOfLocked(chatID string, app *App) (*chat, error) {
	if chatID == "" {
		return nil, apiErr(CodeInvalidChatID, "chatid is required")
	}
	c := s.chats[chatID]
	if c == nil {
		return nil, apiErr(CodeChatNotFound, "%q", chatID)
	}
	if c.app != app.Name {
		return nil, apiErr(CodeNotOwnChat, "")
	}
	return c, nil
}

func (s *Server) appchatGet(r *http.Request, app *App) (map[string]any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.chatOfLocked(r.URL.Query().Get("chatid"), app)
	if err != nil {
		return nil, err
	}
	cp := *c
	cp.UserList = append([]string(nil), c.UserList...)
	return map[string]any{"chat_info": cp}, nil
}

func (s *Server) appchatSend(r *http.Request, app *App) (map[string]any, error) {
	m, body, err := readJSON(r)
	if err != nil {
		return nil, err
	}
	chatID, err := str(m, "chatid")
	if err != nil {
		return nil, err
	}
	msgtype, err := str(m, "msgtype")
	if err != nil {
		return nil, err
	}
	if !chatTypes[msgtype] {
		return nil, apiErr(CodeInvalidMsgType, "msgtype %q cannot be sent to a group chat", msgtype)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.chatOfLocked(chatID, app)
	if err != nil {
		return nil, err
	}
	content, err := s.validateContentLocked(msgtype, m[msgtype])
	if err != nil {
		return nil, err
	}
	s.deliverLocked(SentMessage{API: "appchat/send", App: app.Name, AgentID: app.AgentID, ChatID: chatID,
		MsgID: randomString(48), MsgType: msgtype, Content: content, Body: body, Time: s.clock.Now()}, c.UserList, limitChat)
	return nil, nil
}
