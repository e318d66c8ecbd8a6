package sim

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/schemas"
)

// The Official Account API (api.weixin.qq.com) served beside WeCom's: its paths
// do not collide with WeCom's (/cgi-bin/token vs /cgi-bin/gettoken,
// /cgi-bin/message/custom/send vs /cgi-bin/message/send), so one simulator
// address serves as both wecom.api_base and mp.api_base.

// Official Account error codes the simulator answers with.
const (
	CodeMPInvalidCredential = 40001 // unknown or replaced access_token (on /cgi-bin/token: wrong secret)
	CodeMPInvalidGrantType  = 40002 // grant_type is not client_credential
	CodeMPInvalidOpenID     = 40003 // touser is not a follower of the account
	CodeMPInvalidAppID      = 40013 // unknown appid
	CodeMPInvalidTemplateID = 40037 // empty or unknown template_id
	CodeMPInvalidAppSecret  = 40125 // wrong secret
	CodeMPRequireSubscribe  = 43004 // template message to a user who unfollowed
	CodeMPOutOfTime         = 45015 // customer-service message past 48 h after the last interaction, or to an unfollower
	CodeMPOutOfCount        = 45047 // more than MPMessagesPerInteraction customer-service messages since the last interaction
	CodeMPArgumentInvalid   = 47003 // template data is not an object of {"value": ...}
)

// MP window rules, as WeChat's customer-service message API applies them.
const (
	// MPWindow: customer-service messages are allowed this long after the user's
	// last interaction (a message, a menu click, following, a scan).
	MPWindow = 48 * time.Hour
	// MPMessagesPerInteraction: customer-service messages allowed per interaction;
	// the next interaction starts the count again.
	MPMessagesPerInteraction = 5
	// mpOldTokenGrace: a new /cgi-bin/token call replaces the token; the old one
	// keeps working this long.
	mpOldTokenGrace = 5 * time.Minute
)

// Message types /cgi-bin/message/custom/send accepts.
var mpCustomTypes = map[string]bool{"text": true, "image": true, "voice": true, "video": true, "music": true,
	"news": true, "mpnews": true, "mpnewsarticle": true, "msgmenu": true, "wxcard": true, "miniprogrampage": true}

// mpErrmsgs are the texts WeChat answers with (before its " rid: ..." suffix).
var mpErrmsgs = map[int]string{
	CodeBusy:                "system error",
	CodeMPInvalidCredential: "invalid credential, access_token is invalid or not latest",
	CodeMPInvalidGrantType:  "invalid grant_type",
	CodeMPInvalidOpenID:     "invalid openid",
	CodeInvalidMediaID:      "invalid media_id",
	CodeInvalidMsgType:      "invalid message type",
	CodeMPInvalidAppID:      "invalid appid",
	CodeMPInvalidTemplateID: "invalid template_id",
	CodeMPInvalidAppSecret:  "invalid appsecret",
	CodeMissingToken:        "access_token missing",
	41002:                   "appid missing",
	41004:                   "appsecret missing",
	CodeMissingMediaID:      "media_id missing",
	CodeTokenExpired:        "access_token expired",
	CodeRequirePost:         "require POST method",
	CodeMPRequireSubscribe:  "require subscribe",
	CodeEmptyContent:        "empty content",
	CodeContentTooLarge:     "content size out of limit",
	CodeTooManyArticles:     "article size out of limit",
	CodeMPOutOfTime:         "response out of time limit or subscription is canceled",
	CodeMPOutOfCount:        "out of response count limit",
	CodeBadJSON:             "data format error",
	CodeMPArgumentInvalid:   "argument invalid!",
}

// mpFollower is what the simulator knows of one openid of one account.
type mpFollower struct {
	unfollowed bool
	last       time.Time // last interaction; zero: none seen (a configured follower)
	sends      int       // customer-service messages since last
}

// nonInteractions are events that do not open the customer-service window:
// WeChat counts messages, follows, menu clicks and scans, not automatic reports.
var nonInteractions = map[string]bool{"unsubscribe": true, "location": true, "view": true,
	"templatesendjobfinish": true, "masssendjobfinish": true}

func mpKey(account, openid string) string { return account + "|" + openid }

// initMP seeds the configured followers.
func (s *Server) initMP() {
	s.mpTokens = map[string]*token{}
	s.mpFollowers = map[string]*mpFollower{}
	for _, a := range s.cfg.Accounts {
		for _, o := range a.Followers {
			s.mpFollowers[mpKey(a.Name, o)] = &mpFollower{}
		}
	}
}

// interact records what a played callback means for the customer-service
// window of an Official Account's user.
func (s *Server) interact(account string, d schemas.EventData) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := mpKey(account, d.User)
	f := s.mpFollowers[k]
	if f == nil {
		f = &mpFollower{}
		s.mpFollowers[k] = f
	}
	ev := strings.ToLower(d.Event)
	switch {
	case d.MsgType == "event" && ev == "unsubscribe":
		f.unfollowed = true
	case d.MsgType == "event" && nonInteractions[ev]:
	default:
		f.unfollowed = false // only a follower can message the account; subscribe re-follows
		f.last, f.sends = s.clock.Now(), 0
	}
}

// MPWindow reports an Official Account user's customer-service window: when
// they last interacted, how many customer-service messages were sent since, and
// whether they follow the account (false also for an openid never seen).
func (s *Server) MPWindow(account, openid string) (last time.Time, sent int, following bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.mpFollowers[mpKey(account, openid)]
	if f == nil {
		return time.Time{}, 0, false
	}
	return f.last, f.sends, !f.unfollowed
}

func (s *Server) mpRoutes(m *http.ServeMux) {
	m.HandleFunc("/cgi-bin/token", s.mpAPI("token", false, "", s.mpToken))
	m.HandleFunc("/cgi-bin/message/custom/send", s.mpAPI("message/custom/send", true, http.MethodPost, s.mpCustomSend))
	m.HandleFunc("/cgi-bin/message/template/send", s.mpAPI("message/template/send", true, http.MethodPost, s.mpTemplateSend))
}

type mpHandler func(r *http.Request, acct *Account) (map[string]any, error)

// mpAPI is api for the Official Account API: faults, method, access_token.
func (s *Server) mpAPI(name string, needToken bool, method string, h mpHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.countAndFault(w, name, s.writeMP) {
			return
		}
		var (
			acct *Account
			resp map[string]any
			err  error
		)
		if method == http.MethodPost && r.Method != http.MethodPost {
			err = apiErr(CodeRequirePost, "")
		}
		if err == nil && needToken {
			acct, err = s.mpCheckToken(r.URL.Query().Get("access_token"))
		}
		if err == nil {
			resp, err = h(r, acct)
		}
		if s.takeLost(name) {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, herr := hj.Hijack(); herr == nil {
					_ = conn.Close()
					return
				}
			}
		}
		s.writeMP(w, name, resp, err)
	}
}

// writeMP answers WeChat-style: {"errcode":0,"errmsg":"ok",...} or the code
// with "<text> rid: <request id>".
func (s *Server) writeMP(w http.ResponseWriter, api string, resp map[string]any, err error) {
	var ae *apiError
	switch {
	case err == nil:
		if resp == nil {
			resp = map[string]any{}
		}
		if api != "token" { // the token answer has no errcode, as WeChat's
			resp["errcode"], resp["errmsg"] = 0, "ok"
		}
	case errors.As(err, &ae):
		msg, ok := mpErrmsgs[ae.code]
		if !ok {
			msg = "error"
		}
		if ae.detail != "" {
			msg += ": " + ae.detail
		}
		resp = map[string]any{"errcode": ae.code, "errmsg": msg + " rid: " + randomString(8) + "-" + randomString(8)}
		s.mu.Lock()
		s.stats.Errors[strconv.Itoa(ae.code)]++
		s.mu.Unlock()
		s.log.Debug("sim: mp api error", zap.String("api", api), zap.Int("errcode", ae.code), zap.String("detail", ae.detail))
	default:
		resp = map[string]any{"errcode": CodeBusy, "errmsg": "system error rid: sim"}
	}
	w.Header().Set("Content-Type", "application/json; encoding=utf-8")
	_ = json.NewEncoder(w).Encode(resp)
}

func (s *Server) mpCheckToken(v string) (*Account, error) {
	if v == "" {
		return nil, apiErr(CodeMissingToken, "")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.mpTokens[v]
	switch {
	case t == nil:
		return nil, apiErr(CodeMPInvalidCredential, "")
	case !s.clock.Now().Before(t.expires):
		if cur := s.tokens["mp/"+t.app]; cur != nil && cur != t {
			return nil, apiErr(CodeMPInvalidCredential, "a newer access_token was issued") // replaced, grace over
		}
		return nil, apiErr(CodeTokenExpired, "")
	}
	return s.accounts[t.app], nil
}

// mpToken is GET /cgi-bin/token. Unlike WeCom's gettoken it issues a new token
// on every call; the previous one keeps working for mpOldTokenGrace.
func (s *Server) mpToken(r *http.Request, _ *Account) (map[string]any, error) {
	q := r.URL.Query()
	appID, secret := q.Get("appid"), q.Get("secret")
	if q.Get("grant_type") != "client_credential" {
		return nil, apiErr(CodeMPInvalidGrantType, "")
	}
	if appID == "" {
		return nil, apiErr(41002, "")
	}
	var acct *Account
	for i := range s.cfg.Accounts {
		if s.cfg.Accounts[i].AppID == appID {
			acct = &s.cfg.Accounts[i]
		}
	}
	switch {
	case acct == nil:
		return nil, apiErr(CodeMPInvalidAppID, "")
	case secret == "":
		return nil, apiErr(41004, "")
	case acct.Secret == "" || secret != acct.Secret:
		return nil, apiErr(CodeMPInvalidAppSecret, "")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	key := "mp/" + acct.Name // in s.tokens beside the apps', so ExpireTokens reaches it
	if old := s.tokens[key]; old != nil && old.expires.After(now.Add(mpOldTokenGrace)) {
		old.expires = now.Add(mpOldTokenGrace)
	}
	t := &token{app: acct.Name, value: randomString(64), expires: now.Add(s.cfg.TokenLifetime)}
	s.tokens[key] = t
	s.mpTokens[t.value] = t
	s.stats.GetToken[acct.Name]++
	return map[string]any{"access_token": t.value, "expires_in": int64(s.cfg.TokenLifetime / time.Second)}, nil
}

// mpFollowerLocked returns the account's follower openid, or 40003.
func (s *Server) mpFollowerLocked(acct *Account, m map[string]json.RawMessage) (string, *mpFollower, error) {
	openid, err := str(m, "touser")
	if err != nil {
		return "", nil, apiErr(CodeMPInvalidOpenID, "touser must be a string")
	}
	f := s.mpFollowers[mpKey(acct.Name, openid)]
	if openid == "" || f == nil {
		return "", nil, apiErr(CodeMPInvalidOpenID, "%q is not an openid of %s", openid, acct.Name)
	}
	return openid, f, nil
}

func (s *Server) mpCustomSend(r *http.Request, acct *Account) (map[string]any, error) {
	m, body, err := readJSON(r)
	if err != nil {
		return nil, err
	}
	msgtype, err := str(m, "msgtype")
	if err != nil || !mpCustomTypes[msgtype] {
		return nil, apiErr(CodeInvalidMsgType, "%q", msgtype)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	openid, f, err := s.mpFollowerLocked(acct, m)
	if err != nil {
		return nil, err
	}
	summary, err := s.mpValidateLocked(msgtype, m[msgtype])
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	switch {
	case f.unfollowed:
		return nil, apiErr(CodeMPOutOfTime, "%s unfollowed the account", openid)
	case f.last.IsZero() || now.Sub(f.last) >= MPWindow:
		return nil, apiErr(CodeMPOutOfTime, "last interaction %s, more than 48 h ago", describeTime(f.last))
	case f.sends >= MPMessagesPerInteraction:
		return nil, apiErr(CodeMPOutOfCount, "%d messages since the last interaction", f.sends)
	}
	f.sends++
	s.mpMsgSeq++
	s.recordMPLocked(SentMessage{MsgID: strconv.FormatInt(s.mpMsgSeq, 10), API: "message/custom/send", App: acct.Name,
		User: openid, MsgType: msgtype, Content: summary, Body: json.RawMessage(body), Time: now})
	return nil, nil
}

func describeTime(t time.Time) string {
	if t.IsZero() {
		return "never seen"
	}
	return t.Format(time.RFC3339)
}

// mpValidateLocked checks the msgtype's object as WeChat does and returns a
// summary for SentMessage.Content.
func (s *Server) mpValidateLocked(msgtype string, raw json.RawMessage) (string, error) {
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
	case "text":
		c := getStr(o, "content")
		if strings.TrimSpace(c) == "" {
			return "", apiErr(CodeEmptyContent, "text.content is empty")
		}
		if len(c) > maxTextBytes {
			return "", apiErr(CodeContentTooLarge, "text.content is %d bytes, at most %d", len(c), maxTextBytes)
		}
		return c, nil
	case "image", "voice", "mpnews":
		id := getStr(o, "media_id")
		if id == "" {
			return "", apiErr(CodeMissingMediaID, "%s.media_id", msgtype)
		}
		if m := s.media[id]; m != nil && m.Filename != "" {
			return m.Filename, nil
		}
		return id, nil
	case "video":
		if getStr(o, "media_id") == "" {
			return "", apiErr(CodeMissingMediaID, "video.media_id")
		}
		return getStr(o, "title"), nil
	case "news":
		arts := getList(o, "articles")
		if len(arts) == 0 {
			return "", apiErr(CodeBadJSON, "news.articles is empty")
		}
		if len(arts) > 1 {
			return "", apiErr(CodeTooManyArticles, "news has %d articles, at most 1", len(arts))
		}
		a, _ := arts[0].(map[string]any)
		if getStr(a, "title") == "" {
			return "", apiErr(CodeBadJSON, "news.articles[0].title is empty")
		}
		return getStr(a, "title"), nil
	case "miniprogrampage":
		if getStr(o, "appid") == "" || getStr(o, "pagepath") == "" || getStr(o, "thumb_media_id") == "" {
			return "", apiErr(CodeBadJSON, "miniprogrampage needs appid, pagepath and thumb_media_id")
		}
		return getStr(o, "title"), nil
	case "msgmenu":
		if len(getList(o, "list")) == 0 {
			return "", apiErr(CodeBadJSON, "msgmenu.list is empty")
		}
		return getStr(o, "head_content"), nil
	}
	return msgtype, nil // music, mpnewsarticle, wxcard: accepted as they are
}

// mpClientMsgIDWindow is how long WeChat de-duplicates a template send's
// client_msg_id ("10 minutes; longer is not guaranteed").
const mpClientMsgIDWindow = 10 * time.Minute

// mpClientMsg is the first template send of a client_msg_id.
type mpClientMsg struct {
	msgID int64
	at    time.Time
}

func (s *Server) mpTemplateSend(r *http.Request, acct *Account) (map[string]any, error) {
	m, body, err := readJSON(r)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	openid, f, err := s.mpFollowerLocked(acct, m)
	if err != nil {
		return nil, err
	}
	tid, err := str(m, "template_id")
	if err != nil || tid == "" {
		return nil, apiErr(CodeMPInvalidTemplateID, "template_id is empty")
	}
	var data map[string]struct {
		Value string `json:"value"`
	}
	if raw, ok := m["data"]; ok {
		if err := json.Unmarshal(raw, &data); err != nil {
			return nil, apiErr(CodeMPArgumentInvalid, "data must map each key to {\"value\": \"...\"}")
		}
	}
	if len(acct.Templates) > 0 {
		i := slices.IndexFunc(acct.Templates, func(t Template) bool { return t.ID == tid })
		if i < 0 {
			return nil, apiErr(CodeMPInvalidTemplateID, "%q is not in %s's template library", tid, acct.Name)
		}
		for _, k := range acct.Templates[i].Keys {
			if _, ok := data[k]; !ok {
				return nil, apiErr(CodeMPArgumentInvalid, "data.%s is missing (template %s has %s)", k, tid, strings.Join(acct.Templates[i].Keys, ", "))
			}
		}
	}
	if f.unfollowed {
		return nil, apiErr(CodeMPRequireSubscribe, "%s unfollowed the account", openid)
	}
	// WeChat sends one message per openid and client_msg_id (within 10
	// minutes): a repeat answers the first send's msgid and is not shown again.
	cmid, _ := str(m, "client_msg_id")
	cmKey := acct.Name + "|" + openid + "|" + cmid
	if prev, ok := s.mpClientMsgs[cmKey]; ok && cmid != "" && s.clock.Now().Sub(prev.at) < mpClientMsgIDWindow {
		return map[string]any{"msgid": prev.msgID}, nil
	}
	summary := tid
	if v, ok := data["first"]; ok && v.Value != "" {
		summary = v.Value
	}
	s.mpMsgSeq++
	id := s.mpMsgSeq
	if cmid != "" {
		if s.mpClientMsgs == nil {
			s.mpClientMsgs = make(map[string]mpClientMsg)
		}
		s.mpClientMsgs[cmKey] = mpClientMsg{msgID: id, at: s.clock.Now()}
	}
	s.recordMPLocked(SentMessage{MsgID: strconv.FormatInt(id, 10), API: "message/template/send", App: acct.Name,
		User: openid, MsgType: "template", Content: summary, Body: json.RawMessage(body), Time: s.clock.Now()})
	return map[string]any{"msgid": id}, nil
}

func (s *Server) recordMPLocked(m SentMessage) {
	s.seq++
	m.Seq = s.seq
	s.sent = append(s.sent, m)
	s.stats.Sent++
	s.notifyLocked()
}
