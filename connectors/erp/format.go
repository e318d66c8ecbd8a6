package erp

import (
	"fmt"
	"strings"
)

var orderStatus = map[string]string{
	"created": "已创建", "paid": "已付款", "shipped": "已发货", "delivered": "已签收", "cancelled": "已取消",
}

// OrderSummary is the markdown answer to "订单 <id>".
func OrderSummary(o Order) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**订单 %s**\n", o.ID)
	fmt.Fprintf(&b, "客户：%s\n", o.Customer)
	fmt.Fprintf(&b, "金额：%s\n", FormatMoney(o.AmountCents, o.Currency))
	st := o.Status
	if zh, ok := orderStatus[o.Status]; ok {
		st = zh + " (" + o.Status + ")"
	}
	fmt.Fprintf(&b, "状态：%s\n", st)
	if !o.CreatedAt.IsZero() {
		fmt.Fprintf(&b, "下单：%s\n", o.CreatedAt.Format("2006-01-02"))
	}
	if len(o.Items) > 0 {
		b.WriteString("明细：\n")
		for _, it := range o.Items {
			fmt.Fprintf(&b, "> %s %s × %d\n", it.SKU, it.Name, it.Quantity)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// StockSummary is the markdown answer to "库存 <sku>".
func StockSummary(s Stock) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**库存 %s**", s.SKU)
	if s.Name != "" {
		fmt.Fprintf(&b, " %s", s.Name)
	}
	fmt.Fprintf(&b, "\n数量：%d %s\n仓库：%s", s.Quantity, s.Unit, s.Warehouse)
	if !s.UpdatedAt.IsZero() {
		fmt.Fprintf(&b, "\n更新：%s", s.UpdatedAt.Format("2006-01-02 15:04"))
	}
	return b.String()
}

// plain drops the markdown this package writes (bold, quotes) for channels
// that show text only.
func plain(md string) string {
	lines := strings.Split(strings.ReplaceAll(md, "**", ""), "\n")
	for i, l := range lines {
		if rest, ok := strings.CutPrefix(l, "> "); ok {
			lines[i] = "- " + rest
		}
	}
	return strings.Join(lines, "\n")
}
