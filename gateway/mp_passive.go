package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/schemas"
)

// Passive replies (被动回复): an Official Account's callback may be answered
// with the reply itself, within WeChat's 5 s. The gateway waits up to
// gateway.passive_reply_wait for the first reply a connector publishes to the
// event, claims it by compare-and-set in bus.BucketMPPassive (the sender then
// skips it) and answers it as XML; when nothing comes in time it releases the
// event and answers "success", and the sender custom-sends the reply. The event
// is published before any of this, so nothing waits on an unstored event.

// passiveEligible: the messages and events a customer expects an answer to.
func passiveEligible(d schemas.EventData) bool {
	switch strings.ToLower(d.MsgType) {
	case "text", "voice", "image":
		return true
	case "event":
		switch strings.ToLower(d.Event) {
		case "subscribe", "click", "scan":
			return true
		}
	}
	return false
}

// passiveWait is one callback waiting for its reply.
type passiveWait struct {
	replies chan schemas.Outbound // from the account's dispatcher
	done    func()                // stops the dispatch to replies
	kv      jetstream.KeyValue
	key     string
	rev     uint64
	until   time.Time     // in the gateway's clock (the record's)
	budget  time.Duration // real time left to wait, from the callback's start
	replay  []byte        // a retry of a callback already answered passively
}

// mpState is the gateway's Official Account state.
type mpState struct {
	replies         replyHub
	passive, window bus.KVHandle
}

// replyHub hands the replies on wxhub.out.<account> to the callbacks waiting
// for them: one subscription per account, each message decoded once.
type replyHub struct {
	mu      sync.Mutex
	subs    map[string]*nats.Subscription // by account
	waiters map[string]chan schemas.Outbound
}

// wait registers eventID's waiter, subscribing to the account's subject on first use.
func (h *replyHub) wait(nc *nats.Conn, account, eventID string) (chan schemas.Outbound, func(), error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil {
		h.subs, h.waiters = map[string]*nats.Subscription{}, map[string]chan schemas.Outbound{}
	}
	if h.subs[account] == nil {
		sub, err := nc.Subscribe(bus.OutSubject(account), h.dispatch)
		if err != nil {
			return nil, nil, err
		}
		h.subs[account] = sub
	}
	c := make(chan schemas.Outbound, 4)
	h.waiters[eventID] = c
	return c, func() {
		h.mu.Lock()
		delete(h.waiters, eventID)
		h.mu.Unlock()
	}, nil
}

func (h *replyHub) dispatch(m *nats.Msg) {
	var out schemas.Outbound
	if json.Unmarshal(m.Data, &out) != nil || out.Data.InReplyTo == "" {
		return
	}
	h.mu.Lock()
	c := h.waiters[out.Data.InReplyTo]
	h.mu.Unlock()
	if c != nil {
		select {
		case c <- out:
		default: // the waiter has its first replies; later ones are custom-sent
		}
	}
}

// startPassive prepares the wait for ev's reply before ev is published: it
// subscribes to the account's outbound subject and records "waiting". nil: no
// wait (disabled, not eligible, a retry not answered passively, or KV trouble).
func (g *Gateway) startPassive(ctx context.Context, ch *channel, d schemas.EventData, eventID string, started time.Time) *passiveWait {
	if ch.kind != schemas.ChannelMP || g.cfg.PassiveReplyWait <= 0 || !passiveEligible(d) {
		return nil
	}
	budget := g.cfg.PassiveReplyWait - time.Since(started)
	if budget <= 0 {
		return nil
	}
	kv, err := g.mp.passive.Get(ctx, g.bus.MPPassiveKV)
	if err != nil {
		g.log.Warn("mp: passive replies unavailable", zap.Error(err))
		return nil
	}
	pw := &passiveWait{kv: kv, key: bus.PassiveKey(eventID), budget: budget, until: g.now().Add(budget)}
	rec, _ := json.Marshal(bus.PassiveRecord{State: bus.PassiveWaiting, Until: pw.until})
	if pw.rev, err = kv.Create(ctx, pw.key, rec); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			// WeChat's retry of a callback seen before: answer it as the first was.
			if e, gerr := kv.Get(ctx, pw.key); gerr == nil {
				var prev bus.PassiveRecord
				if json.Unmarshal(e.Value(), &prev) == nil && prev.State == bus.PassivePassive {
					return &passiveWait{replay: prev.Reply}
				}
			}
			return nil
		}
		g.log.Warn("mp: passive reply record not created", zap.Error(err))
		return nil
	}
	if pw.replies, pw.done, err = g.mp.replies.wait(g.bus.Conn(), ch.name, eventID); err != nil {
		g.log.Warn("mp: passive reply subscription failed", zap.Error(err))
		pw.release(ctx)
		return nil
	}
	return pw
}

// await returns the plain reply XML for the event, or nil when the answer is
// "success" (no reply in time, a reply that cannot be passive, or the sender
// took it first).
func (pw *passiveWait) await(ctx context.Context, g *Gateway, ch *channel, d schemas.EventData, eventID string) []byte {
	if pw.replay != nil {
		return pw.replay
	}
	defer pw.done()
	timer := time.NewTimer(pw.budget)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			pw.release(context.WithoutCancel(ctx))
			return nil
		case <-timer.C:
			pw.release(ctx)
			return nil
		case out := <-pw.replies:
			if out.Data.Kind != schemas.KindMessage {
				continue
			}
			reply, ok := passiveXML(out.Data.Body, d, g.now())
			if !ok {
				pw.release(ctx) // e.g. a msgmenu: only a customer-service message can carry it
				return nil
			}
			rec, _ := json.Marshal(bus.PassiveRecord{State: bus.PassivePassive, OutboundID: out.ID, Reply: reply})
			if _, err := pw.kv.Update(ctx, pw.key, rec, pw.rev); err != nil {
				return nil // the sender claimed it: it custom-sends
			}
			g.log.Debug("mp: passive reply", zap.String("event", eventID), zap.String("reply", out.ID), zap.String("account", ch.name))
			return reply
		}
	}
}

// abandon undoes startPassive for an event that was not stored: no record is
// left, so that WeChat's retry of the callback can wait for its reply again.
func (pw *passiveWait) abandon(ctx context.Context) {
	pw.done()
	_ = pw.kv.Delete(ctx, pw.key, jetstream.LastRevision(pw.rev))
}

// release gives the event's replies to the sender.
func (pw *passiveWait) release(ctx context.Context) {
	rec, _ := json.Marshal(bus.PassiveRecord{State: bus.PassiveReleased})
	_, _ = pw.kv.Update(ctx, pw.key, rec, pw.rev) // lost CAS: the sender already took it
}

// writeMPAnswer answers an Official Account callback: "success", or the
// passive reply, encrypted when the request was (safe and compatible mode).
func (g *Gateway) writeMPAnswer(w http.ResponseWriter, r *http.Request, ch *channel, reply []byte) {
	if reply == nil {
		w.Write([]byte("success")) // "success": no passive reply
		return
	}
	q := r.URL.Query()
	if q.Get("msg_signature") != "" && ch.crypter != nil {
		enc, err := ch.crypter.EncryptReply(reply, strconv.FormatInt(g.now().Unix(), 10), q.Get("nonce"))
		if err != nil {
			// Cannot happen with a valid key; the claimed reply is lost to WeChat, so say so.
			g.log.Error("mp: passive reply not encrypted", zap.Error(err))
			w.Write([]byte("success"))
			return
		}
		reply = enc
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.Write(reply)
}

// passiveXML turns a customer-service message body (as connectors and the push
// API write it) into WeChat's passive reply XML to the event's user. false: the
// body cannot be a passive reply (another user, or a type passive replies lack).
func passiveXML(body json.RawMessage, d schemas.EventData, now time.Time) ([]byte, bool) {
	var m struct {
		ToUser   string                    `json:"touser"`
		MsgType  string                    `json:"msgtype"`
		Text     *struct{ Content string } `json:"text"`
		Markdown *struct{ Content string } `json:"markdown"`
		Image    *struct {
			MediaID string `json:"media_id"`
		} `json:"image"`
		Voice *struct {
			MediaID string `json:"media_id"`
		} `json:"voice"`
		Video *struct {
			MediaID     string `json:"media_id"`
			Title       string `json:"title"`
			Description string `json:"description"`
		} `json:"video"`
		News *struct {
			Articles []struct {
				Title       string `json:"title"`
				Description string `json:"description"`
				URL         string `json:"url"`
				PicURL      string `json:"picurl"`
			} `json:"articles"`
		} `json:"news"`
		TextCard *struct {
			Title       string `json:"title"`
			Description string `json:"description"`
			URL         string `json:"url"`
		} `json:"textcard"`
	}
	if json.Unmarshal(body, &m) != nil || m.ToUser != d.User {
		return nil, false
	}
	var b bytes.Buffer
	el := func(name, v string) {
		b.WriteString("<" + name + "><![CDATA[")
		b.WriteString(strings.ReplaceAll(v, "]]>", "]]]]><![CDATA[>"))
		b.WriteString("]]></" + name + ">")
	}
	b.WriteString("<xml>")
	el("ToUserName", d.User)
	el("FromUserName", d.ToUser)
	b.WriteString("<CreateTime>" + strconv.FormatInt(now.Unix(), 10) + "</CreateTime>")
	article := func(title, desc, url, pic string) {
		el("MsgType", "news")
		b.WriteString("<ArticleCount>1</ArticleCount><Articles><item>")
		el("Title", title)
		el("Description", desc)
		el("PicUrl", pic)
		el("Url", url)
		b.WriteString("</item></Articles>")
	}
	switch {
	case m.MsgType == "text" && m.Text != nil && m.Text.Content != "":
		el("MsgType", "text")
		el("Content", m.Text.Content)
	case m.MsgType == "markdown" && m.Markdown != nil && m.Markdown.Content != "":
		el("MsgType", "text")
		el("Content", m.Markdown.Content)
	case m.MsgType == "image" && m.Image != nil && m.Image.MediaID != "":
		el("MsgType", "image")
		b.WriteString("<Image>")
		el("MediaId", m.Image.MediaID)
		b.WriteString("</Image>")
	case m.MsgType == "voice" && m.Voice != nil && m.Voice.MediaID != "":
		el("MsgType", "voice")
		b.WriteString("<Voice>")
		el("MediaId", m.Voice.MediaID)
		b.WriteString("</Voice>")
	case m.MsgType == "video" && m.Video != nil && m.Video.MediaID != "":
		el("MsgType", "video")
		b.WriteString("<Video>")
		el("MediaId", m.Video.MediaID)
		el("Title", m.Video.Title)
		el("Description", m.Video.Description)
		b.WriteString("</Video>")
	case m.MsgType == "news" && m.News != nil && len(m.News.Articles) == 1:
		a := m.News.Articles[0]
		article(a.Title, a.Description, a.URL, a.PicURL)
	case m.MsgType == "textcard" && m.TextCard != nil:
		article(m.TextCard.Title, m.TextCard.Description, m.TextCard.URL, "")
	default:
		return nil, false
	}
	b.WriteString("</xml>")
	if xml.Unmarshal(b.Bytes(), new(struct{})) != nil {
		return nil, false
	}
	return b.Bytes(), true
}
