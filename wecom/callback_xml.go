package wecom

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/wxhub/wxhub/schemas"
)

// BuildInbound writes the plain callback XML that WeChat would send for d: the
// inverse of ParseInbound (ParseInbound(BuildInbound(d)) == d for every d that
// ParseInbound produced). The simulator encrypts it with Crypter.EncryptCallbackAgent.
// Channel and App are not part of the XML. Extra keys are written back as nested
// elements ("A.B" -> <A><B/></A>, "A[1]" -> the second <A>). Errors wrap ErrXML
// and name the field at fault.
func BuildInbound(d schemas.EventData) ([]byte, error) {
	root := &node{name: "xml", index: -1}
	str := func(parent *node, name, v string) {
		if v != "" {
			parent.children = append(parent.children, &node{name: name, text: v, index: -1})
		}
	}
	num := func(parent *node, name string, v string) {
		parent.children = append(parent.children, &node{name: name, text: v, index: -1})
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

	str(root, "ToUserName", d.ToUser)
	str(root, "FromUserName", d.User)
	num(root, "CreateTime", strconv.FormatInt(d.CreateTime, 10))
	str(root, "MsgType", d.MsgType)
	str(root, "Content", d.Content)
	str(root, "PicUrl", d.PicURL)
	str(root, "MediaId", d.MediaID)
	str(root, "Format", d.Format)
	str(root, "Recognition", d.Recognition)
	str(root, "ThumbMediaId", d.ThumbMediaID)

	// A location message carries these at the top; location_select inside SendLocationInfo.
	loc := root
	if d.Event == "location_select" {
		loc = &node{name: "SendLocationInfo", index: -1}
	}
	isLocation := d.MsgType == "location" || loc != root
	if isLocation || d.LocationX != 0 {
		num(loc, "Location_X", f(d.LocationX))
	}
	if isLocation || d.LocationY != 0 {
		num(loc, "Location_Y", f(d.LocationY))
	}
	if isLocation || d.Scale != 0 {
		num(loc, "Scale", strconv.Itoa(d.Scale))
	}
	str(loc, "Label", d.Label)

	str(root, "Title", d.Title)
	str(root, "Description", d.Description)
	str(root, "Url", d.URL)
	str(root, "Event", d.Event)
	str(root, "EventKey", d.EventKey)
	if loc != root {
		root.children = append(root.children, loc)
	}
	isLOCATION := d.Event == "LOCATION"
	if isLOCATION || d.Latitude != 0 {
		num(root, "Latitude", f(d.Latitude))
	}
	if isLOCATION || d.Longitude != 0 {
		num(root, "Longitude", f(d.Longitude))
	}
	if isLOCATION || d.Precision != 0 {
		num(root, "Precision", f(d.Precision))
	}
	if d.ScanType != "" || d.ScanResult != "" {
		scan := &node{name: "ScanCodeInfo", index: -1}
		str(scan, "ScanType", d.ScanType)
		str(scan, "ScanResult", d.ScanResult)
		root.children = append(root.children, scan)
	}
	str(root, "TaskId", d.TaskID)
	str(root, "CardType", d.CardType)
	str(root, "ResponseCode", d.ResponseCode)
	if len(d.SelectedItems) > 0 {
		items := &node{name: "SelectedItems", index: -1}
		for i, it := range d.SelectedItems {
			item := &node{name: "SelectedItem", index: -1}
			if len(d.SelectedItems) > 1 {
				item.index = i
			}
			num(item, "QuestionKey", it.QuestionKey)
			ids := &node{name: "OptionIds", index: -1}
			for _, id := range it.OptionIDs {
				num(ids, "OptionId", id)
			}
			item.children = append(item.children, ids)
			items.children = append(items.children, item)
		}
		root.children = append(root.children, items)
	}
	str(root, "ChangeType", d.ChangeType)
	str(root, "MsgId", d.MsgID)
	if d.AgentID != 0 {
		num(root, "AgentID", strconv.FormatInt(d.AgentID, 10))
	}
	if err := addExtra(root, d.Extra); err != nil {
		return nil, fmt.Errorf("wecom: build inbound: %w", err)
	}

	var b bytes.Buffer
	if err := writeNode(&b, root, true); err != nil {
		return nil, fmt.Errorf("wecom: build inbound: %w", err)
	}
	return b.Bytes(), nil
}

// BuildText is BuildInbound of a text message, the commonest thing the simulator sends.
func BuildText(toUser, fromUser string, agentID, createTime int64, content, msgID string) ([]byte, error) {
	return BuildInbound(schemas.EventData{
		ToUser: toUser, User: fromUser, AgentID: agentID, CreateTime: createTime,
		MsgType: "text", Content: content, MsgID: msgID,
	})
}

// BuildEvent is BuildInbound of an event (subscribe, click, enter_agent, ...);
// extra holds the event's other elements as in EventData.Extra (may be nil).
func BuildEvent(toUser, fromUser string, agentID, createTime int64, event, eventKey string, extra map[string]string) ([]byte, error) {
	return BuildInbound(schemas.EventData{
		ToUser: toUser, User: fromUser, AgentID: agentID, CreateTime: createTime,
		MsgType: "event", Event: event, EventKey: eventKey, Extra: extra,
	})
}

type extraSeg struct {
	name  string
	index int
}

func parseExtraKey(key string) ([]extraSeg, error) {
	parts := strings.Split(key, ".")
	segs := make([]extraSeg, 0, len(parts))
	for _, p := range parts {
		s := extraSeg{name: p, index: -1}
		if i := strings.IndexByte(p, '['); i >= 0 && strings.HasSuffix(p, "]") {
			n, err := strconv.Atoi(p[i+1 : len(p)-1])
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: extra key %q: bad index in %q", ErrXML, key, p)
			}
			s = extraSeg{name: p[:i], index: n}
		}
		if !validName(s.name) {
			return nil, fmt.Errorf("%w: extra key %q: %q is not an element name", ErrXML, key, s.name)
		}
		segs = append(segs, s)
	}
	return segs, nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		letter := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r > 0x7f
		if !letter && (i == 0 || !(r >= '0' && r <= '9' || r == '-')) {
			return false
		}
	}
	return true
}

// addExtra inserts the Extra elements into the tree, merging paths that share a
// parent (so "SendLocationInfo.Poiname" lands beside the known location fields).
func addExtra(root *node, extra map[string]string) error {
	type entry struct {
		segs  []extraSeg
		value string
	}
	entries := make([]entry, 0, len(extra))
	for k, v := range extra {
		segs, err := parseExtraKey(k)
		if err != nil {
			return err
		}
		entries = append(entries, entry{segs, v})
	}
	// Sorted by path, indices numerically, so repeated elements keep their order.
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i].segs, entries[j].segs
		for k := 0; k < len(a) && k < len(b); k++ {
			if a[k].name != b[k].name {
				return a[k].name < b[k].name
			}
			if a[k].index != b[k].index {
				return a[k].index < b[k].index
			}
		}
		return len(a) < len(b)
	})
	for _, e := range entries {
		n := root
		for _, s := range e.segs {
			var next *node
			for _, c := range n.children {
				if c.name == s.name && c.index == s.index {
					next = c
					break
				}
			}
			if next == nil {
				next = &node{name: s.name, index: s.index}
				n.children = append(n.children, next)
			}
			n = next
		}
		n.text = e.value
	}
	return nil
}

func writeNode(b *bytes.Buffer, n *node, isRoot bool) error {
	if !validText(n.text) {
		return fmt.Errorf("%w: <%s> holds characters XML cannot carry", ErrXML, n.name)
	}
	b.WriteString("<" + n.name + ">")
	if n.text != "" {
		if isRoot {
			return fmt.Errorf("%w: text directly inside <xml>", ErrXML)
		}
		writeCDATA(b, n.text)
	}
	for _, c := range n.children {
		if err := writeNode(b, c, false); err != nil {
			return err
		}
	}
	b.WriteString("</" + n.name + ">")
	return nil
}

// validText reports whether s is UTF-8 made only of characters XML 1.0 allows.
func validText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !(r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF ||
			r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF) {
			return false
		}
	}
	return true
}
