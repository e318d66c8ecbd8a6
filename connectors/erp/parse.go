package erp

import (
	"regexp"
	"strings"
)

// Command kinds understood in text messages.
const (
	CmdOrder = "order" // "订单 1001", "order 1001"
	CmdStock = "stock" // "库存 A-100", "stock A-100"
)

// Command is a parsed text command. Arg is empty when the keyword came
// without a (valid) order number or SKU, which deserves a usage hint.
type Command struct {
	Kind string
	Arg  string
}

// cmdRe: keyword, optional separator, argument. Full-width colon and "#" are
// common in Chinese input; "查" / "查询" as a prefix is what people type.
// Latin keywords need a separator so that "stockholm" is not "stock holm".
var cmdRe = regexp.MustCompile(`(?i)^(?:查询?\s*)?(?:(订单|库存)\s*(?:[:：#＃号]\s*)?|(order|stock)(?:\s*[:：#＃]\s*|\s+|$))(.*)$`)

// CommandRule is the router content pattern that sends ERP commands here; it
// is looser than cmdRe so that "订单" alone reaches the connector and gets a usage hint.
const CommandRule = `(?i)^\s*(查询?\s*)?(订单|库存|order\b|stock\b)`

// argRe is a valid order number or SKU (case kept: SKUs are upper case but
// people type them in lower case; the ERP normalises).
var argRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$`)

// ParseCommand recognises "订单 1001" / "order 1001" and "库存 A-100" /
// "stock A-100" (any case, full-width spaces and colons allowed). ok is false
// when the text is not an ERP command at all.
func ParseCommand(text string) (cmd Command, ok bool) {
	t := strings.TrimSpace(strings.ReplaceAll(text, "\u3000", " "))
	// Voice transcripts end in punctuation ("订单1001。").
	t = strings.TrimRight(t, "。．.！!？? ")
	m := cmdRe.FindStringSubmatch(t)
	if m == nil {
		return Command{}, false
	}
	switch strings.ToLower(m[1] + m[2]) {
	case "订单", "order":
		cmd.Kind = CmdOrder
	default:
		cmd.Kind = CmdStock
	}
	arg := strings.TrimSpace(m[3])
	if argRe.MatchString(arg) {
		cmd.Arg = arg
		if cmd.Kind == CmdStock {
			cmd.Arg = strings.ToUpper(arg)
		}
	}
	return cmd, true
}
