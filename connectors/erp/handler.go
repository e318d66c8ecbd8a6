// Package erp is the ERP connector: employees ask for orders ("订单 1001") and
// stock ("库存 A-100") in WeCom and get the ERP's answer; the ERP's approval
// requests arrive as template cards, and a click on 同意/拒绝 is recorded in the
// ERP as the clicking user, then the card shows the outcome to every approver.
// When the ERP is down the user is told once, and the event is retried (by
// the connector SDK, with backoff) until the ERP answers.
//
// The package also holds the ERP's API model and the approval card builder;
// erpdemo is a sample ERP that speaks this API. docs/erp.md is the guide.
package erp

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

// Texts the user sees.
const (
	NoticeUnavailable = "ERP 暂时不可用，稍后自动重试 / ERP unavailable, will retry"
	NoticeGaveUp      = "ERP 长时间不可用，您的请求已转人工处理 / ERP still unavailable, your request was handed to an operator"
	helpText          = "ERP 查询：发送“订单 1001”查订单，“库存 A-100”查库存。\nERP: send \"order 1001\" or \"stock A-100\"."
)

// Connector is the ERP connector's handler (a connectors.Handler). Safe for
// concurrent use.
type Connector struct {
	cfg    Config
	client *Client
	log    *zap.Logger
}

// New checks cfg (after defaults) and returns the connector.
func New(cfg Config, log *zap.Logger) (*Connector, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Connector{cfg: cfg, client: NewClient(cfg), log: log.Named("erp")}, nil
}

// Spec declares the connector to the SDK runner (name and concurrency).
func (c *Connector) Spec() connectors.Spec {
	return connectors.Spec{Name: Name, Concurrency: c.cfg.Concurrency}
}

// Client is the connector's ERP client.
func (c *Connector) Client() *Client { return c.client }

// Config is the effective config (defaults applied).
func (c *Connector) Config() Config { return c.cfg }

var (
	_ connectors.Handler   = (*Connector)(nil)
	_ connectors.Specifier = (*Connector)(nil)
)

// Handle answers ERP text commands and approval card clicks; other events
// are ignored (acknowledged without a reply).
func (c *Connector) Handle(ctx context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
	d := ev.Data
	switch {
	case d.MsgType == "text":
		return c.handleText(ctx, ev, d.Content)
	case d.MsgType == "voice" && d.Recognition != "":
		// Official Account voice with its transcript: treat as typed.
		return c.handleText(ctx, ev, d.Recognition)
	case d.MsgType == "event" && strings.EqualFold(d.Event, "template_card_event") && strings.HasPrefix(d.TaskID, TaskIDPrefix):
		return c.handleClick(ctx, ev)
	}
	c.log.Debug("event ignored", zap.String("event", ev.ID), zap.String("type", ev.Type))
	return nil, nil
}

func (c *Connector) handleText(ctx context.Context, ev *schemas.Event, text string) ([]connectors.Reply, error) {
	user := ev.Data.User
	cmd, ok := ParseCommand(text)
	switch {
	case !ok:
		return []connectors.Reply{c.text(ev, helpText)}, nil
	case cmd.Arg == "" && cmd.Kind == CmdOrder:
		return []connectors.Reply{c.text(ev, "请带上订单号，例如“订单 1001” / Please give an order number, e.g. \"order 1001\"")}, nil
	case cmd.Arg == "":
		return []connectors.Reply{c.text(ev, "请带上物料编号，例如“库存 A-100” / Please give a SKU, e.g. \"stock A-100\"")}, nil
	case cmd.Kind == CmdOrder:
		o, err := c.client.Order(ctx, cmd.Arg)
		if err != nil {
			return c.failure(ctx, ev, err, fmt.Sprintf("未找到订单 %s / Order %s not found", cmd.Arg, cmd.Arg))
		}
		return []connectors.Reply{c.rich(ev, OrderSummary(o))}, nil
	default:
		s, err := c.client.Stock(ctx, cmd.Arg)
		if err != nil {
			return c.failure(ctx, ev, err, fmt.Sprintf("未找到物料 %s / SKU %s not found", cmd.Arg, cmd.Arg))
		}
		c.log.Debug("stock answered", zap.String("event", ev.ID), zap.String("user", user))
		return []connectors.Reply{c.rich(ev, StockSummary(s))}, nil
	}
}

func (c *Connector) handleClick(ctx context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
	d := ev.Data
	id, ok := ApprovalIDFromTaskID(d.TaskID)
	if !ok {
		return nil, connectors.Permanent(fmt.Errorf("erp: card task id %q: not an approval id", d.TaskID))
	}
	if d.EventKey != DecisionApprove && d.EventKey != DecisionReject {
		return nil, connectors.Permanent(fmt.Errorf("erp: approval %s: unknown button key %q", id, d.EventKey))
	}
	a, err := c.client.Decide(ctx, id, DecisionRequest{Decision: d.EventKey, By: d.User})
	switch {
	case err == nil:
		c.log.Info("approval decided", zap.String("event", ev.ID), zap.String("approval", id),
			zap.String("status", a.Status), zap.String("by", a.DecidedBy))
		replies := []connectors.Reply{c.cardUpdate(ev, a)}
		if d, _ := connectors.DeliveryFrom(ctx); !d.First() {
			// The user was told the ERP was down; say that it went through.
			replies = append(replies, c.text(ev, fmt.Sprintf("审批 %s 已处理：%s / Approval %s done: %s", id, OutcomeLabel(a), id, a.Status)))
		}
		if a.Requester != "" && (a.Status == StatusApproved || a.Status == StatusRejected) {
			replies = append(replies, c.outcome(ev, a))
		}
		return replies, nil
	case errors.Is(err, ErrConflict):
		if a.ID == "" {
			if a, err = c.client.Approval(ctx, id); err != nil {
				return c.failure(ctx, ev, err, fmt.Sprintf("审批 %s 不存在 / Approval %s not found", id, id))
			}
		}
		// Someone decided first: show everyone the real outcome.
		return []connectors.Reply{
			c.cardUpdate(ev, a),
			c.text(ev, fmt.Sprintf("审批 %s 已由 %s 处理（%s），您的操作未生效 / Approval %s was already %s by %s",
				id, a.DecidedBy, OutcomeLabel(a), id, a.Status, a.DecidedBy)),
		}, nil
	case errors.Is(err, ErrForbidden):
		return []connectors.Reply{c.text(ev, fmt.Sprintf("您不是审批 %s 的审批人，操作未生效 / You are not an approver of %s", id, id))}, nil
	case errors.Is(err, ErrNotFound):
		replies := []connectors.Reply{c.text(ev, fmt.Sprintf("审批 %s 不存在或已撤销 / Approval %s does not exist", id, id))}
		if d.ResponseCode != "" {
			replies = append(replies, connectors.CardButtonUpdate(d.ResponseCode, []string{d.User}, "已失效").WithPriority(schemas.PriorityUrgent))
		}
		return replies, nil
	}
	return c.failure(ctx, ev, err, "")
}

// outcome tells the requester how their approval was decided, through the
// app the card went out on.
func (c *Connector) outcome(ev *schemas.Event, a Approval) connectors.Reply {
	r := connectors.Text(a.Requester, fmt.Sprintf("您的审批「%s」%s / Your approval %q was %s by %s",
		a.Title, OutcomeLabel(a), a.Title, a.Status, a.DecidedBy))
	return c.app(ev, r)
}

// cardUpdate replaces the buttons of the approval card with its outcome for
// every approver (everyone who got the card). Without a response code (not a
// real click) the clicking user gets the outcome as text instead.
func (c *Connector) cardUpdate(ev *schemas.Event, a Approval) connectors.Reply {
	if ev.Data.ResponseCode == "" {
		return c.text(ev, fmt.Sprintf("审批 %s：%s", a.ID, OutcomeLabel(a)))
	}
	users := a.Approvers
	if len(users) == 0 {
		users = []string{ev.Data.User}
	}
	return connectors.CardButtonUpdate(ev.Data.ResponseCode, users, OutcomeLabel(a)).WithPriority(schemas.PriorityUrgent)
}

// failure turns an ERP error into the event's outcome: not found is an
// answer; unavailable is retried, and the user is told on the first attempt
// (and on the last, before the event goes to the DLQ); anything else is
// permanent (DLQ).
func (c *Connector) failure(ctx context.Context, ev *schemas.Event, err error, notFound string) ([]connectors.Reply, error) {
	d, _ := connectors.DeliveryFrom(ctx)
	switch {
	case errors.Is(err, ErrNotFound) && notFound != "":
		return []connectors.Reply{c.text(ev, notFound)}, nil
	case errors.Is(err, ErrUnavailable):
		// Notices are published as <event id>/notice/<n>: keeping the first
		// one at index 0 on the last attempt lets the bus drop it as a
		// duplicate when the retries took less than its duplicate window.
		var notices []connectors.Reply
		if d.First() || d.Last() {
			notices = append(notices, c.text(ev, NoticeUnavailable))
		}
		if d.Last() {
			notices = append(notices, c.text(ev, NoticeGaveUp))
		}
		return nil, connectors.Retry(err, notices...)
	case ctx.Err() != nil:
		return nil, err // shutting down: another delivery will do it
	}
	return nil, connectors.Permanent(err)
}

// text is a reply to the event's user through the event's app (or the
// configured one). Answers to what the user just did are urgent: they pass
// the user's own quiet hours.
func (c *Connector) text(ev *schemas.Event, s string) connectors.Reply {
	return c.app(ev, connectors.Text(ev.Data.User, s).WithPriority(schemas.PriorityUrgent))
}

// rich is markdown in WeCom; Official Accounts get the same as plain text.
func (c *Connector) rich(ev *schemas.Event, md string) connectors.Reply {
	if ev.Data.Channel == schemas.ChannelMP {
		return c.text(ev, plain(md))
	}
	return c.app(ev, connectors.Markdown(ev.Data.User, md).WithPriority(schemas.PriorityUrgent))
}

func (c *Connector) app(ev *schemas.Event, r connectors.Reply) connectors.Reply {
	if ev.Data.App == "" {
		r.App = c.cfg.App
	}
	return r
}
