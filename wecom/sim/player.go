package sim

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math/big"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom"
)

// Delivery is the outcome of one callback played to the gateway.
type Delivery struct {
	App      string `json:"app"`
	URL      string `json:"url"`
	MsgID    string `json:"msg_id,omitempty"` // MsgId of a message (events have none)
	Plain    string `json:"plain"`            // the plain XML that was encrypted and posted
	Attempts int    `json:"attempts"`         // HTTP attempts made, 1 to Config.Callback.Attempts
	Status   int    `json:"status"`           // HTTP status of the last answer, 0 if none came
	Answer   string `json:"answer,omitempty"` // the body of the 200 answer as received
	Reply    string `json:"reply,omitempty"`  // the passive reply, decrypted, if the gateway sent one
	// ReplyContent is the Content of a passive text reply, for convenience.
	ReplyContent string        `json:"reply_content,omitempty"`
	Failures     []string      `json:"failures,omitempty"` // why each failed attempt failed
	Duration     time.Duration `json:"duration_ns"`
}

// SetGatewayURL changes the base URL callbacks go to when an app or account has no
// CallbackURL (tests start the gateway after the simulator, on a free port).
func (s *Server) SetGatewayURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.GatewayURL = strings.TrimRight(u, "/")
}

// target is what the player needs to know about an app or an Official Account.
type target struct {
	name       string
	mp         bool
	toUser     string // ToUserName: corp id, or the account's original id
	agentID    int64
	token      string
	url        string
	recognizes bool
	mode       string // an account's message mode: ModeSafe, ModeCompatible or ModePlain
	crypter    *wecom.Crypter
}

func (s *Server) target(name string) (target, error) {
	s.mu.Lock()
	gw := s.cfg.GatewayURL
	s.mu.Unlock()
	if name == "" && len(s.cfg.Apps) > 0 {
		name = s.cfg.Apps[0].Name
	}
	t := target{name: name, crypter: s.crypters[name]}
	if a := s.appsByName[name]; a != nil {
		t.toUser, t.agentID, t.token, t.url = s.corpOf(a), a.AgentID, a.Token, a.CallbackURL
		if t.url == "" && gw != "" {
			t.url = gw + "/wecom/" + url.PathEscape(name) + "/callback"
		}
	} else if a := s.accounts[name]; a != nil {
		t.mp, t.toUser, t.token, t.url, t.recognizes = true, a.OriginalID, a.Token, a.CallbackURL, a.Recognition
		t.mode = cmp.Or(a.Mode, ModeSafe)
		if t.url == "" && gw != "" {
			t.url = gw + "/mp/" + url.PathEscape(name) + "/callback"
		}
	} else {
		return t, fmt.Errorf("%w: %q", ErrUnknownApp, name)
	}
	if t.crypter == nil || t.url == "" {
		return t, fmt.Errorf("%w: %q", ErrNoCallback, name)
	}
	return t, nil
}

// checkUser: a WeCom app's callbacks come only from members; an Official
// Account's from any openid.
func (s *Server) checkUser(t target, user string) (string, error) {
	if user == "" {
		return "", fmt.Errorf("%w: empty user", ErrUnknownUser)
	}
	if t.mp {
		return user, nil
	}
	u, ok := s.book().users[lower(user)]
	if !ok {
		return "", fmt.Errorf("%w: %q is not a member of the corp", ErrUnknownUser, user)
	}
	return u.UserID, nil
}

func (s *Server) nextMsgID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.msgSeq == 0 {
		// Unique across runs, so a restarted simulator does not collide with MsgIds
		// the gateway's dedup window still remembers.
		s.msgSeq = time.Now().UnixMilli() * 1000
	}
	s.msgSeq++
	return strconv.FormatInt(s.msgSeq, 10)
}

// Say plays a member (or, for an Official Account, an openid) sending a text message.
func (s *Server) Say(ctx context.Context, app, user, text string) (*Delivery, error) {
	return s.SendMessage(ctx, app, user, schemas.EventData{MsgType: "text", Content: text})
}

// Voice plays a voice message. For an Official Account with Recognition on, the
// XML carries recognition as Recognition; WeCom voice messages never do.
// An empty mediaID gets a stored placeholder voice file (see MediaByID).
func (s *Server) Voice(ctx context.Context, app, user, mediaID, recognition string) (*Delivery, error) {
	t, err := s.target(app)
	if err != nil {
		return nil, err
	}
	if mediaID == "" {
		mediaID = s.AddMedia(t.name, "voice", "voice.amr", []byte(voiceMagic+recognition))
	}
	d := schemas.EventData{MsgType: "voice", MediaID: mediaID, Format: "amr"}
	if t.mp && t.recognizes {
		d.Recognition = recognition
	}
	return s.SendMessage(ctx, app, user, d)
}

// SendMessage plays any message or event: ToUser, User, AgentID, CreateTime and
// (for messages) MsgID are filled in; set MsgType and the type's fields.
func (s *Server) SendMessage(ctx context.Context, app, user string, d schemas.EventData) (*Delivery, error) {
	t, err := s.target(app)
	if err != nil {
		return nil, err
	}
	if d.User, err = s.checkUser(t, user); err != nil {
		return nil, err
	}
	d.ToUser, d.AgentID = t.toUser, t.agentID
	if d.CreateTime == 0 {
		d.CreateTime = s.clock.Now().Unix()
	}
	if d.MsgType == "" {
		return nil, fmt.Errorf("sim: send message: empty MsgType")
	}
	if d.MsgType != "event" && d.MsgID == "" {
		d.MsgID = s.nextMsgID()
	}
	if t.mp {
		// WeChat opens the customer-service window on the user's action, whatever
		// the gateway answers.
		s.interact(t.name, d)
	}
	if d.MsgType == "event" && d.Event == "template_card_event" && d.ResponseCode == "" {
		d.ResponseCode = s.IssueClickCode(t.name, d.User, d.TaskID)
	}
	plain, err := wecom.BuildInbound(d)
	if err != nil {
		return nil, fmt.Errorf("sim: build callback XML: %w", err)
	}
	dl, err := s.post(ctx, t, plain)
	if dl != nil {
		dl.MsgID = d.MsgID
	}
	return dl, err
}

// SendEvent plays an event (click, view, enter_agent, subscribe, scancode_waitmsg,
// template_card_event, LOCATION, ...): set Event and its fields (EventKey,
// ScanType/ScanResult, TaskID/CardType, ...). A template_card_event without a
// ResponseCode gets a fresh one, usable once with message/update_template_card.
func (s *Server) SendEvent(ctx context.Context, app, user string, ev schemas.EventData) (*Delivery, error) {
	ev.MsgType = "event"
	if ev.Event == "" {
		return nil, fmt.Errorf("sim: send event: empty Event")
	}
	return s.SendMessage(ctx, app, user, ev)
}

// ClickCard plays user pressing the button key on a template card that was sent
// to them (card is the SentMessage from Sent or WaitSent).
func (s *Server) ClickCard(ctx context.Context, app, user string, card SentMessage, key string) (*Delivery, error) {
	var body struct {
		TemplateCard struct {
			CardType string `json:"card_type"`
			TaskID   string `json:"task_id"`
		} `json:"template_card"`
	}
	if err := json.Unmarshal(card.Body, &body); err != nil || body.TemplateCard.TaskID == "" {
		return nil, fmt.Errorf("sim: click card: message %s is not a template card with a task_id", card.MsgID)
	}
	return s.SendEvent(ctx, app, user, schemas.EventData{Event: "template_card_event", EventKey: key,
		TaskID: body.TemplateCard.TaskID, CardType: body.TemplateCard.CardType})
}

// SendXML encrypts and posts plainXML as it is (for what the other helpers do
// not build).
func (s *Server) SendXML(ctx context.Context, app string, plainXML []byte) (*Delivery, error) {
	t, err := s.target(app)
	if err != nil {
		return nil, err
	}
	return s.post(ctx, t, plainXML)
}

func randomDigits(n int) string {
	b := make([]byte, n)
	for i := range b {
		v, err := rand.Int(rand.Reader, big.NewInt(10))
		if err != nil {
			panic(err)
		}
		b[i] = byte('0' + v.Int64())
	}
	if b[0] == '0' {
		b[0] = '1'
	}
	return string(b)
}

func (s *Server) client() *resty.Client {
	return resty.NewWithClient(s.httpClient)
}

// post plays WeChat: encrypt, sign, POST; no 200 within Callback.Timeout is a
// failed attempt, retried with the very same request up to Callback.Attempts.
func (s *Server) post(ctx context.Context, t target, plain []byte) (*Delivery, error) {
	start := time.Now()
	d := &Delivery{App: t.name, URL: t.url, Plain: string(plain)}
	enc, err := t.crypter.Encrypt(plain)
	if err != nil {
		return nil, fmt.Errorf("sim: encrypt callback: %w", err)
	}
	ts, nonce := strconv.FormatInt(s.clock.Now().Unix(), 10), randomDigits(10)
	q := url.Values{"msg_signature": {t.crypter.Signature(ts, nonce, enc)}, "timestamp": {ts}, "nonce": {nonce}}
	var body strings.Builder
	body.WriteString("<xml><ToUserName><![CDATA[" + t.toUser + "]]></ToUserName><Encrypt><![CDATA[" + enc + "]]></Encrypt>")
	switch {
	case t.mp && t.mode == ModePlain:
		// Plain mode (明文模式): the XML as it is, signed with the token only.
		q = url.Values{"signature": {t.crypter.Signature(ts, nonce, "")}, "timestamp": {ts}, "nonce": {nonce}}
		if u := fromUser(plain); u != "" {
			q.Set("openid", u)
		}
		body.Reset()
		body.Write(plain)
	case t.mp && t.mode == ModeCompatible:
		// Compatible mode (兼容模式): the plain fields and Encrypt in one XML, both signatures.
		q.Set("signature", t.crypter.Signature(ts, nonce, ""))
		q.Set("encrypt_type", "aes")
		if u := fromUser(plain); u != "" {
			q.Set("openid", u)
		}
		body.Reset()
		x := string(plain)
		if i := strings.LastIndex(x, "</xml>"); i >= 0 {
			x = x[:i] + "<Encrypt><![CDATA[" + enc + "]]></Encrypt></xml>"
		}
		body.WriteString(x)
	case t.mp:
		// An Official Account in safe mode also sends the plain-mode signature and the openid.
		q.Set("signature", t.crypter.Signature(ts, nonce, ""))
		q.Set("encrypt_type", "aes")
		if u := fromUser(plain); u != "" {
			q.Set("openid", u)
		}
	default:
		body.WriteString("<AgentID><![CDATA[" + strconv.FormatInt(t.agentID, 10) + "]]></AgentID>")
	}
	if !t.mp || t.mode == ModeSafe {
		body.WriteString("</xml>")
	}
	s.mu.Lock()
	s.stats.Callbacks++
	attempts, timeout := s.cfg.Callback.Attempts, s.cfg.Callback.Timeout
	s.mu.Unlock()
	c := s.client()
	for i := 1; i <= attempts; i++ {
		d.Attempts = i
		s.mu.Lock()
		s.stats.Attempts++
		s.mu.Unlock()
		actx, cancel := context.WithTimeout(ctx, timeout)
		resp, err := c.R().SetContext(actx).SetQueryParamsFromValues(q).
			SetHeader("Content-Type", "text/xml; charset=utf-8").SetBody(body.String()).Post(t.url)
		cancel()
		if err != nil {
			d.Status = 0
			if ctx.Err() != nil {
				d.Failures = append(d.Failures, ctx.Err().Error())
				d.Duration = time.Since(start)
				return d, fmt.Errorf("sim: callback to %s: %w", t.url, ctx.Err())
			}
			d.Failures = append(d.Failures, fmt.Sprintf("attempt %d: no answer within %s: %v", i, timeout, err))
			continue
		}
		d.Status = resp.StatusCode()
		if d.Status != 200 {
			d.Failures = append(d.Failures, fmt.Sprintf("attempt %d: HTTP %d", i, d.Status))
			continue
		}
		d.Answer = string(resp.Body())
		d.Duration = time.Since(start)
		s.log.Info("sim: callback delivered", zap.String("app", t.name), zap.Int("attempts", i))
		return d, s.decodeReply(t, d)
	}
	d.Duration = time.Since(start)
	s.mu.Lock()
	s.stats.CallbackKO++
	s.mu.Unlock()
	s.log.Warn("sim: callback got no answer", zap.String("app", t.name), zap.Int("attempts", d.Attempts), zap.Strings("failures", d.Failures))
	return d, fmt.Errorf("%w: %s after %d attempts: %s", ErrNoAnswer, t.url, d.Attempts, strings.Join(d.Failures, "; "))
}

// decodeReply checks and decrypts the gateway's passive reply, if any: WeChat
// takes "" or "success" as "no reply"; anything else must be an encrypted reply.
func (s *Server) decodeReply(t target, d *Delivery) error {
	a := strings.TrimSpace(d.Answer)
	if a == "" || a == "success" {
		return nil
	}
	if t.mp && t.mode != ModeSafe && !strings.Contains(a, "<Encrypt>") {
		// Plain and compatible mode take a plain reply.
		d.Reply = a
		r, err := wecom.ParseInbound([]byte(a))
		if err == nil {
			d.ReplyContent = r.Content
		}
		return s.passiveReply(t, d, r, err)
	}
	var env struct {
		MsgSignature string `xml:"MsgSignature"`
		TimeStamp    string `xml:"TimeStamp"`
		Nonce        string `xml:"Nonce"`
	}
	if err := xmlUnmarshal([]byte(a), &env); err != nil {
		return fmt.Errorf("%w: not XML: %v", ErrBadReply, err)
	}
	plain, err := t.crypter.Decrypt(env.MsgSignature, env.TimeStamp, env.Nonce, []byte(a))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadReply, err)
	}
	d.Reply = string(plain)
	r, err := wecom.ParseInbound(plain)
	if err == nil {
		d.ReplyContent = r.Content
	}
	if t.mp {
		return s.passiveReply(t, d, r, err)
	}
	return nil
}

// passiveReply checks an Official Account's passive reply as WeChat does (it
// must go back to the user who wrote, from the account) and records it as sent
// (API "passive"), so that WaitSent sees it like a customer-service message.
func (s *Server) passiveReply(t target, d *Delivery, r schemas.EventData, parseErr error) error {
	user := fromUser([]byte(d.Plain))
	switch {
	case parseErr != nil:
		return fmt.Errorf("%w: %w", ErrBadReply, parseErr)
	case r.User != t.toUser || r.ToUser != user:
		return fmt.Errorf("%w: FromUserName %q, ToUserName %q: want the account %q to the user %q", ErrBadReply, r.User, r.ToUser, t.toUser, user)
	case r.MsgType == "":
		return fmt.Errorf("%w: no MsgType", ErrBadReply)
	}
	content := r.Content
	if content == "" {
		content = cmp.Or(r.Title, r.MediaID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mpMsgSeq++
	s.recordMPLocked(SentMessage{MsgID: strconv.FormatInt(s.mpMsgSeq, 10), API: "passive", App: t.name,
		User: user, MsgType: r.MsgType, Content: content, Body: json.RawMessage(strconv.Quote(d.Reply)), Time: s.clock.Now()})
	return nil
}

// VerifyURL plays the URL-verification GET that WeCom sends when an admin saves
// the callback URL (encrypted echostr; the gateway must answer the plain echostr,
// exactly, within Callback.VerifyTimeout). For an Official Account it plays the
// plain-mode check (signature over token, timestamp, nonce; echostr echoed).
func (s *Server) VerifyURL(ctx context.Context, app string) (*Delivery, error) {
	t, err := s.target(app)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	plain := randomDigits(19)
	ts, nonce := strconv.FormatInt(s.clock.Now().Unix(), 10), randomDigits(10)
	q := url.Values{"timestamp": {ts}, "nonce": {nonce}}
	if t.mp {
		q.Set("signature", t.crypter.Signature(ts, nonce, ""))
		q.Set("echostr", plain)
	} else {
		enc, err := t.crypter.Encrypt([]byte(plain))
		if err != nil {
			return nil, fmt.Errorf("sim: encrypt echostr: %w", err)
		}
		q.Set("msg_signature", t.crypter.Signature(ts, nonce, enc))
		q.Set("echostr", enc)
	}
	d := &Delivery{App: t.name, URL: t.url, Plain: plain, Attempts: 1}
	actx, cancel := context.WithTimeout(ctx, s.cfg.Callback.VerifyTimeout)
	defer cancel()
	resp, err := s.client().R().SetContext(actx).SetQueryParamsFromValues(q).Get(t.url)
	d.Duration = time.Since(start)
	if err != nil {
		return d, fmt.Errorf("%w: no answer within %s: %w", ErrVerify, s.cfg.Callback.VerifyTimeout, err)
	}
	d.Status, d.Answer = resp.StatusCode(), string(resp.Body())
	if d.Status != 200 {
		return d, fmt.Errorf("%w: HTTP %d", ErrVerify, d.Status)
	}
	if d.Answer != plain {
		return d, fmt.Errorf("%w: answered %q, want the decrypted echostr %q (no quotes, BOM or newline)", ErrVerify, truncate(d.Answer, 64), plain)
	}
	return d, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func fromUser(plain []byte) string {
	var v struct {
		FromUserName string `xml:"FromUserName"`
	}
	_ = xmlUnmarshal(plain, &v)
	return v.FromUserName
}

func xmlUnmarshal(b []byte, v any) error { return xml.Unmarshal(b, v) }
