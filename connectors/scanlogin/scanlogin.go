// Package scanlogin is the connector half of scan-to-login: it binds the WeCom
// member who scans a login QR code (a scancode_waitmsg event whose ScanResult
// is "wxhub-login:<id>") to the challenge in the wxhub_auth bucket, and, with
// the confirm step on, confirms or denies it when the member answers the card
// it sends. The gateway creates the challenges and hands out the signed
// assertion; see docs/identity.md.
//
// Binding is a compare-and-set on the KV revision: of two members scanning the
// same code, the first one wins and the other is told it is already used.
package scanlogin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

// Name is the connector's name in routing rules.
const Name = "scanlogin"

// Card buttons of the confirm step.
const (
	KeyConfirm = "confirm"
	KeyDeny    = "deny"
)

// Texts the member sees.
const (
	msgInvalid    = "登录二维码无效或已过期，请刷新登录页面后重新扫码。"
	msgExpired    = "登录二维码已过期，请刷新登录页面后重新扫码。"
	msgUsed       = "该登录二维码已被使用。如非本人操作，请联系管理员。"
	msgForeignApp = "该登录二维码不属于本应用，请在正确的应用中扫码。"
	msgConfirmed  = "已登录 %s"
	msgDenied     = "已取消登录 %s"
	msgPending    = "请在收到的卡片上确认登录 %s。"
	msgNotYours   = "这不是您的登录请求。"
)

// Options configure the handler. The zero value confirms on the scan itself,
// uses time.Now and logs nothing.
type Options struct {
	// Confirm sends a 确认登录 / 取消 card after the scan and confirms only on
	// its click (recommended: a photographed QR code alone logs nobody in).
	Confirm bool
	// Now is the clock (tests). Default time.Now.
	Now    func() time.Time
	Logger *zap.Logger
}

// Handler returns the scan-to-login connector on the wxhub_auth bucket. It is
// safe for concurrent use: all state is in the bucket.
func Handler(kv jetstream.KeyValue, o Options) connectors.Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return &handler{kv: kv, o: o}
}

type handler struct {
	kv jetstream.KeyValue
	o  Options
}

// errNotFound: no challenge under that id (never created, or removed by the bucket's TTL).
var errNotFound = errors.New("scanlogin: no such challenge")

// casRetries bounds the read-modify-write loop; each retry means another
// writer changed the challenge, after which it is no longer pending.
const casRetries = 5

// Handle binds scans and answers confirm-card clicks; other events are ignored.
func (h *handler) Handle(ctx context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
	d := &ev.Data
	switch {
	case strings.EqualFold(d.Event, "scancode_waitmsg") && strings.HasPrefix(strings.TrimSpace(d.ScanResult), schemas.AuthQRPrefix):
		return h.scan(ctx, ev, strings.TrimPrefix(strings.TrimSpace(d.ScanResult), schemas.AuthQRPrefix))
	case strings.EqualFold(d.Event, "template_card_event") && strings.HasPrefix(d.TaskID, schemas.AuthTaskPrefix):
		return h.click(ctx, ev, strings.TrimPrefix(d.TaskID, schemas.AuthTaskPrefix))
	}
	return nil, nil // a scan of another code, or an event routed here by a broad rule
}

func (h *handler) load(ctx context.Context, id string) (schemas.AuthChallenge, uint64, error) {
	var ch schemas.AuthChallenge
	if id == "" || strings.ContainsAny(id, ".*> ") {
		return ch, 0, errNotFound // not a valid KV key: nobody could have stored it
	}
	e, err := h.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return ch, 0, errNotFound
	}
	if err != nil {
		return ch, 0, fmt.Errorf("scanlogin: read challenge: %w", err) // bus trouble: retried
	}
	if err := json.Unmarshal(e.Value(), &ch); err != nil {
		return ch, 0, fmt.Errorf("%w: unreadable record", errNotFound)
	}
	return ch, e.Revision(), nil
}

func (h *handler) store(ctx context.Context, ch schemas.AuthChallenge, rev uint64) (bool, error) {
	data, _ := json.Marshal(ch)
	_, err := h.kv.Update(ctx, ch.ID, data, rev)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists): // someone else wrote first
		return false, nil
	default:
		return false, fmt.Errorf("scanlogin: update challenge: %w", err)
	}
}

func text(user, format string, args ...any) []connectors.Reply {
	// Login answers pass quiet hours: the member is at a login page right now.
	return []connectors.Reply{connectors.Text(user, fmt.Sprintf(format, args...)).WithPriority(schemas.PriorityUrgent)}
}

func (h *handler) scan(ctx context.Context, ev *schemas.Event, id string) ([]connectors.Reply, error) {
	user := ev.Data.User
	for range casRetries {
		ch, rev, err := h.load(ctx, id)
		if errors.Is(err, errNotFound) {
			return text(user, msgInvalid), nil
		}
		if err != nil {
			return nil, err
		}
		now := h.o.Now()
		switch {
		case ev.Data.Channel != schemas.ChannelWeCom || ch.App != ev.Data.App:
			h.o.Logger.Info("login scan in a foreign app", zap.String("id", id), zap.String("app", ev.Data.App), zap.String("want", ch.App))
			return text(user, msgForeignApp), nil
		case ch.BoundBy == ev.ID:
			return h.afterScan(ch), nil // a redelivery of the scan that bound it
		case ch.Status != schemas.AuthPending:
			return h.alreadyBound(ch, user), nil
		case ch.Expired(now):
			return text(user, msgExpired), nil
		}
		t := now.UTC()
		ch.User, ch.Method, ch.BoundBy, ch.ScannedAt = user, schemas.AuthMethodScan, ev.ID, &t
		ch.Status = schemas.AuthScanned
		if !h.o.Confirm {
			ch.Status, ch.ConfirmedAt = schemas.AuthConfirmed, &t
		}
		ok, err := h.store(ctx, ch, rev)
		if err != nil {
			return nil, err
		}
		if ok {
			h.o.Logger.Info("login challenge scanned", zap.String("id", id), zap.String("user", user),
				zap.String("client", ch.Client), zap.String("status", ch.Status))
			return h.afterScan(ch), nil
		}
	}
	return nil, fmt.Errorf("scanlogin: challenge %s: too many concurrent updates", id)
}

// afterScan is what the scanning member gets: the confirm card, or the result.
func (h *handler) afterScan(ch schemas.AuthChallenge) []connectors.Reply {
	if ch.Status != schemas.AuthScanned {
		return h.alreadyBound(ch, ch.User)
	}
	return []connectors.Reply{connectors.TemplateCard(ch.User, ConfirmCard(ch)).WithPriority(schemas.PriorityUrgent)}
}

func (h *handler) alreadyBound(ch schemas.AuthChallenge, user string) []connectors.Reply {
	if ch.User != user {
		return text(user, msgUsed)
	}
	switch ch.Status {
	case schemas.AuthScanned:
		return text(user, msgPending, title(ch))
	case schemas.AuthConfirmed, schemas.AuthConsumed:
		return text(user, msgConfirmed, title(ch))
	case schemas.AuthDenied:
		return text(user, msgDenied, title(ch))
	}
	return text(user, msgUsed)
}

func title(ch schemas.AuthChallenge) string {
	if ch.ClientTitle != "" {
		return ch.ClientTitle
	}
	return ch.Client
}

// ConfirmCard is the button_interaction card sent after a scan.
func ConfirmCard(ch schemas.AuthChallenge) map[string]any {
	return map[string]any{
		"card_type":      "button_interaction",
		"source":         map[string]any{"desc": "扫码登录"},
		"main_title":     map[string]string{"title": "登录确认", "desc": title(ch) + " 请求以您的身份登录"},
		"sub_title_text": "请确认是您本人正在该系统的登录页面扫码。如非本人操作，请点击取消。",
		"horizontal_content_list": []map[string]string{
			{"keyname": "登录系统", "value": title(ch)},
		},
		"task_id": schemas.AuthTaskPrefix + ch.ID,
		"button_list": []map[string]any{
			{"text": "确认登录", "style": 1, "key": KeyConfirm},
			{"text": "取消", "style": 2, "key": KeyDeny},
		},
	}
}

func (h *handler) click(ctx context.Context, ev *schemas.Event, id string) ([]connectors.Reply, error) {
	user, rc := ev.Data.User, ev.Data.ResponseCode
	answer := func(label string, format string, args ...any) []connectors.Reply {
		if rc == "" {
			return text(user, format, args...)
		}
		return []connectors.Reply{connectors.CardButtonUpdate(rc, []string{user}, label).WithPriority(schemas.PriorityUrgent)}
	}
	for range casRetries {
		ch, rev, err := h.load(ctx, id)
		if errors.Is(err, errNotFound) {
			return answer("已过期", msgExpired), nil
		}
		if err != nil {
			return nil, err
		}
		now := h.o.Now()
		switch {
		case ch.User != user || ch.App != ev.Data.App:
			return text(user, msgNotYours), nil
		case ch.Status == schemas.AuthConfirmed || ch.Status == schemas.AuthConsumed:
			return answer("已确认登录", msgConfirmed, title(ch)), nil
		case ch.Status == schemas.AuthDenied:
			return answer("已取消", msgDenied, title(ch)), nil
		case ch.Status != schemas.AuthScanned:
			return text(user, msgUsed), nil
		case ch.Expired(now):
			return answer("已过期", msgExpired), nil
		}
		t := now.UTC()
		switch ev.Data.EventKey {
		case KeyConfirm:
			ch.Status, ch.ConfirmedAt = schemas.AuthConfirmed, &t
		case KeyDeny:
			ch.Status = schemas.AuthDenied
		default:
			return nil, connectors.Permanent(fmt.Errorf("scanlogin: unknown button %q on login card %s", ev.Data.EventKey, id))
		}
		ch.BoundBy = ev.ID
		ok, err := h.store(ctx, ch, rev)
		if err != nil {
			return nil, err
		}
		if ok {
			h.o.Logger.Info("login challenge answered", zap.String("id", id), zap.String("user", user), zap.String("status", ch.Status))
			continue // the next round reads the stored state and answers it
		}
	}
	return nil, fmt.Errorf("scanlogin: challenge %s: too many concurrent updates", id)
}
