package erp

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Order is an ERP sales order as GET /api/orders/{id} returns it.
type Order struct {
	ID          string      `json:"id"`
	Customer    string      `json:"customer"`
	AmountCents int64       `json:"amount_cents"` // in fen, to keep money exact
	Currency    string      `json:"currency"`     // "CNY"
	Status      string      `json:"status"`       // e.g. created, paid, shipped, delivered, cancelled
	Items       []OrderItem `json:"items"`
	CreatedAt   time.Time   `json:"created_at"`
}

// OrderItem is one line of an order.
type OrderItem struct {
	SKU            string `json:"sku"`
	Name           string `json:"name"`
	Quantity       int    `json:"quantity"`
	UnitPriceCents int64  `json:"unit_price_cents"`
}

// Stock is a stock item as GET /api/stock/{sku} returns it.
type Stock struct {
	SKU       string    `json:"sku"`
	Name      string    `json:"name"`
	Quantity  int       `json:"quantity"`
	Unit      string    `json:"unit"`
	Warehouse string    `json:"warehouse"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Approval statuses.
const (
	StatusPending  = "pending"
	StatusApproved = "approved"
	StatusRejected = "rejected"
)

// Decisions, which are also the keys of the approval card's buttons.
const (
	DecisionApprove = "approve"
	DecisionReject  = "reject"
)

// Approval is an ERP approval request as GET /api/approvals/{id} returns it.
// Approvers are WeCom userids: the card goes to all of them, the first
// decision wins.
type Approval struct {
	ID          string     `json:"id"`
	Title       string     `json:"title"`
	Description string     `json:"description,omitempty"`
	AmountCents int64      `json:"amount_cents"`
	Currency    string     `json:"currency"`
	Requester   string     `json:"requester"`
	Approvers   []string   `json:"approvers"`
	Status      string     `json:"status"`
	DecidedBy   string     `json:"decided_by,omitempty"`
	DecidedAt   *time.Time `json:"decided_at,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
}

// DecisionRequest is the body of POST /api/approvals/{id}/decision.
type DecisionRequest struct {
	Decision string `json:"decision"` // approve or reject
	By       string `json:"by"`       // the deciding approver's userid
}

// TaskIDPrefix starts the task_id of every ERP approval card; the router sends
// template_card_events with this prefix to the erp connector.
const TaskIDPrefix = "erp-approval-"

// validID is what an approval id may be so that the task id stays within
// WeCom's rules (letters, digits, "_-@", at most 128 bytes).
var validID = regexp.MustCompile(`^[A-Za-z0-9_@-]{1,100}$`)

// TaskID is the card task_id of approval id.
func TaskID(approvalID string) string { return TaskIDPrefix + approvalID }

// ApprovalIDFromTaskID returns the approval id of an ERP card's task id.
func ApprovalIDFromTaskID(taskID string) (string, bool) {
	id, ok := strings.CutPrefix(taskID, TaskIDPrefix)
	if !ok || !validID.MatchString(id) {
		return "", false
	}
	return id, true
}

// ValidApprovalID reports whether id can be carried in a card task id.
func ValidApprovalID(id string) bool { return validID.MatchString(id) }

// TemplateCard is the part of WeCom's template_card object an approval card uses.
type TemplateCard struct {
	CardType              string             `json:"card_type"`
	Source                *CardSource        `json:"source,omitempty"`
	MainTitle             CardTitle          `json:"main_title"`
	SubTitleText          string             `json:"sub_title_text,omitempty"`
	HorizontalContentList []CardHorizontalKV `json:"horizontal_content_list,omitempty"`
	TaskID                string             `json:"task_id"`
	ButtonList            []CardButton       `json:"button_list,omitempty"`
}

// CardSource is the card's source line.
type CardSource struct {
	Desc string `json:"desc"`
}

// CardTitle is main_title.
type CardTitle struct {
	Title string `json:"title"`
	Desc  string `json:"desc,omitempty"`
}

// CardHorizontalKV is one key/value line of horizontal_content_list.
type CardHorizontalKV struct {
	KeyName string `json:"keyname"`
	Value   string `json:"value"`
}

// CardButton is one button of button_list; Style 1 is blue, 2 grey.
type CardButton struct {
	Text  string `json:"text"`
	Style int    `json:"style,omitempty"`
	Key   string `json:"key"`
}

// ApprovalCard builds the button_interaction card the ERP pushes for a pending
// approval: title, description, amount, requester and the approve/reject
// buttons, with task_id TaskID(a.ID). WeCom truncates long texts on the phone;
// the limits here keep the card readable.
func ApprovalCard(a Approval) TemplateCard {
	title := a.Title
	if title == "" {
		title = "审批 " + a.ID
	}
	return TemplateCard{
		CardType:     "button_interaction",
		Source:       &CardSource{Desc: "ERP 审批"},
		MainTitle:    CardTitle{Title: clip(title, 26), Desc: clip("单号 "+a.ID, 30)},
		SubTitleText: clip(a.Description, 112),
		HorizontalContentList: []CardHorizontalKV{
			{KeyName: "金额", Value: FormatMoney(a.AmountCents, a.Currency)},
			{KeyName: "申请人", Value: clip(a.Requester, 26)},
		},
		TaskID: TaskID(a.ID),
		ButtonList: []CardButton{
			{Text: "同意", Style: 1, Key: DecisionApprove},
			{Text: "拒绝", Style: 2, Key: DecisionReject},
		},
	}
}

// OutcomeLabel is what replaces the buttons of a decided approval's card,
// e.g. "已同意 by lisi".
func OutcomeLabel(a Approval) string {
	switch a.Status {
	case StatusApproved:
		return "已同意 by " + a.DecidedBy
	case StatusRejected:
		return "已拒绝 by " + a.DecidedBy
	default:
		return "待审批"
	}
}

// FormatMoney renders cents as "¥12,345.60" (CNY) or "12,345.60 USD".
func FormatMoney(cents int64, currency string) string {
	neg := cents < 0
	if neg {
		cents = -cents
	}
	whole := strconv.FormatInt(cents/100, 10)
	var b strings.Builder
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	s := fmt.Sprintf("%s.%02d", b.String(), cents%100)
	sign := ""
	if neg {
		sign = "-"
	}
	if currency == "" || currency == "CNY" {
		return sign + "¥" + s
	}
	return sign + s + " " + currency
}

// clip cuts s to at most n runes, marking the cut with "…".
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
