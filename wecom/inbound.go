package wecom

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/wxhub/wxhub/schemas"
)

// maxDepth bounds the nesting of callback XML; WeChat's deepest documented
// element (open_approval_change) is five levels down.
const maxDepth = 32

// maxElements bounds the elements of one callback document: WeChat's largest
// (a template card event with many selected options) has a few dozen.
const maxElements = 4096

// node is one element of the callback XML. Attributes are ignored: WeChat never
// sends any.
type node struct {
	name     string
	text     string
	children []*node
	// index is the position among same-named siblings, or -1 when the name is
	// not repeated; it becomes "name[i]" in Extra keys.
	index int
}

// parseTree reads the callback document into a tree rooted at <xml>.
func parseTree(doc []byte) (*node, error) {
	if root := scanTree(doc); root != nil {
		return root, nil
	}
	return decodeTree(doc)
}

// decodeTree is parseTree through encoding/xml: every document the fast path
// (scanTree) does not take, e.g. one with a declaration or entities; the fuzz
// test holds the two to the same trees.
func decodeTree(doc []byte) (*node, error) {
	dec := xml.NewDecoder(bytes.NewReader(doc))
	var root *node
	var stack []*node
	var text []*strings.Builder
	elements := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrXML, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil && len(stack) == 0 {
				return nil, fmt.Errorf("%w: more than one root element", ErrXML)
			}
			if len(stack) >= maxDepth {
				return nil, fmt.Errorf("%w: nested deeper than %d", ErrXML, maxDepth)
			}
			if elements++; elements > maxElements {
				return nil, fmt.Errorf("%w: more than %d elements", ErrXML, maxElements)
			}
			n := &node{name: t.Name.Local, index: -1}
			if root == nil {
				root = n
			} else {
				stack[len(stack)-1].children = append(stack[len(stack)-1].children, n)
			}
			stack = append(stack, n)
			text = append(text, &strings.Builder{})
		case xml.CharData:
			if len(stack) > 0 {
				text[len(text)-1].Write(t)
			} else if len(bytes.TrimSpace(t)) > 0 {
				return nil, fmt.Errorf("%w: text outside the root element", ErrXML)
			}
		case xml.EndElement:
			n := stack[len(stack)-1]
			n.text = text[len(text)-1].String()
			if len(n.children) > 0 && strings.TrimSpace(n.text) == "" {
				n.text = "" // indentation between child elements
			}
			stack, text = stack[:len(stack)-1], text[:len(text)-1]
		}
	}
	if root == nil {
		return nil, fmt.Errorf("%w: empty document", ErrXML)
	}
	if root.name != "xml" {
		return nil, fmt.Errorf("%w: root element <%s>, want <xml>", ErrXML, root.name)
	}
	indexRepeats(root)
	return root, nil
}

// indexRepeats numbers same-named siblings so that each gets its own Extra key.
func indexRepeats(n *node) {
	if len(n.children) <= 16 {
		// The usual few children: compare pairs rather than build two maps.
		for i, c := range n.children {
			if c.index >= 0 {
				continue // numbered with an earlier sibling of its name
			}
			k := 0
			for _, d := range n.children[i+1:] {
				if d.name == c.name {
					k++
					d.index = k
				}
			}
			if k > 0 {
				c.index = 0
			}
		}
	} else {
		count := map[string]int{}
		for _, c := range n.children {
			count[c.name]++
		}
		seen := map[string]int{}
		for _, c := range n.children {
			if count[c.name] > 1 {
				c.index = seen[c.name]
				seen[c.name]++
			}
		}
	}
	for _, c := range n.children {
		indexRepeats(c)
	}
}

func (n *node) segment() string {
	if n.index < 0 {
		return n.name
	}
	return n.name + "[" + strconv.Itoa(n.index) + "]"
}

// flatten stores n and everything under it in extra: leaves as "A.B.C" -> text.
func flatten(prefix string, n *node, extra map[string]string) {
	key := prefix + n.segment()
	if len(n.children) == 0 || n.text != "" {
		extra[key] = n.text
	}
	for _, c := range n.children {
		flatten(key+".", c, extra)
	}
}

// inboundParser fills an EventData from the tree, collecting the first error.
type inboundParser struct {
	d     schemas.EventData
	extra map[string]string
	err   error
}

func (p *inboundParser) fail(field, value, want string) {
	if p.err == nil {
		p.err = fmt.Errorf("%w: <%s> %q is not %s", ErrXML, field, value, want)
	}
}

func (p *inboundParser) int64(field, v string) int64 {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		p.fail(field, v, "an integer")
	}
	return n
}

func (p *inboundParser) float(field, v string) float64 {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	f, err := strconv.ParseFloat(v, 64)
	// NaN and infinities cannot be encoded as JSON, so they are refused here.
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		p.fail(field, v, "a finite number")
	}
	return f
}

// ParseInbound parses the plain (decrypted) callback XML of a WeCom app or an
// Official Account into the normalized EventData. Every element without a field
// lands in Extra (nested ones as "Parent.Child", repeated ones as "Name[i]"), so
// nothing WeChat sends is lost. Channel and App are left for the caller, who knows
// which callback URL the document came to. Errors wrap ErrXML.
func ParseInbound(plainXML []byte) (schemas.EventData, error) {
	root, err := parseTree(plainXML)
	if err != nil {
		return schemas.EventData{}, fmt.Errorf("wecom: parse inbound: %w", err)
	}
	p := &inboundParser{extra: map[string]string{}}
	known := map[string]bool{}
	for _, c := range root.children {
		if known[c.name] || !p.top(c) {
			flatten("", c, p.extra)
			continue
		}
		known[c.name] = true
	}
	if p.err != nil {
		return schemas.EventData{}, fmt.Errorf("wecom: parse inbound: %w", p.err)
	}
	if strings.TrimSpace(p.d.MsgType) == "" {
		return schemas.EventData{}, fmt.Errorf("wecom: parse inbound: %w: no <MsgType>", ErrXML)
	}
	if len(p.extra) > 0 {
		p.d.Extra = p.extra
	}
	return p.d, nil
}

// top maps one child of <xml> onto its field and reports whether it knew it.
func (p *inboundParser) top(c *node) bool {
	switch c.name {
	case "ScanCodeInfo":
		p.container(c, func(k *node) bool {
			switch k.name {
			case "ScanType":
				p.d.ScanType = k.text
			case "ScanResult":
				p.d.ScanResult = k.text
			default:
				return false
			}
			return true
		})
		return true
	case "SendLocationInfo":
		p.container(c, func(k *node) bool { return p.location(k) })
		return true
	case "SelectedItems":
		p.container(c, func(k *node) bool {
			if k.name != "SelectedItem" {
				return false
			}
			item := schemas.SelectedItem{}
			prefix := "SelectedItems." + k.segment() + "."
			p.containerAt(prefix, k, func(q *node) bool {
				switch q.name {
				case "QuestionKey":
					item.QuestionKey = q.text
				case "OptionIds":
					p.containerAt(prefix+q.segment()+".", q, func(o *node) bool {
						if o.name != "OptionId" {
							return false
						}
						item.OptionIDs = append(item.OptionIDs, o.text)
						return true
					})
				default:
					return false
				}
				return true
			})
			p.d.SelectedItems = append(p.d.SelectedItems, item)
			return true
		})
		return true
	}
	if len(c.children) > 0 {
		return false // a leaf we know, turned into a structure: keep it whole in Extra
	}
	v := c.text
	switch c.name {
	case "ToUserName":
		p.d.ToUser = v
	case "FromUserName":
		p.d.User = v
	case "CreateTime":
		p.d.CreateTime = p.int64(c.name, v)
	case "MsgType":
		p.d.MsgType = v
	case "MsgId":
		p.d.MsgID = strings.TrimSpace(v)
	case "AgentID":
		p.d.AgentID = p.int64(c.name, v)
	case "Content":
		p.d.Content = v
	case "PicUrl":
		p.d.PicURL = v
	case "MediaId":
		p.d.MediaID = v
	case "Format":
		p.d.Format = v
	case "Recognition":
		p.d.Recognition = v
	case "ThumbMediaId":
		p.d.ThumbMediaID = v
	case "Title":
		p.d.Title = v
	case "Description":
		p.d.Description = v
	case "Url":
		p.d.URL = v
	case "Event":
		p.d.Event = v
	case "EventKey":
		p.d.EventKey = v
	case "Latitude":
		p.d.Latitude = p.float(c.name, v)
	case "Longitude":
		p.d.Longitude = p.float(c.name, v)
	case "Precision":
		p.d.Precision = p.float(c.name, v)
	case "TaskId":
		p.d.TaskID = v
	case "CardType":
		p.d.CardType = v
	case "ResponseCode":
		p.d.ResponseCode = v
	case "ChangeType":
		p.d.ChangeType = v
	default:
		return p.location(c)
	}
	return true
}

// location maps the fields of a location message, which location_select
// events carry inside <SendLocationInfo>.
func (p *inboundParser) location(c *node) bool {
	if len(c.children) > 0 {
		return false
	}
	switch c.name {
	case "Location_X":
		p.d.LocationX = p.float(c.name, c.text)
	case "Location_Y":
		p.d.LocationY = p.float(c.name, c.text)
	case "Scale":
		p.d.Scale = int(p.int64(c.name, c.text))
	case "Label":
		p.d.Label = c.text
	default:
		return false
	}
	return true
}

func (p *inboundParser) container(c *node, known func(*node) bool) {
	p.containerAt(c.segment()+".", c, known)
}

// containerAt hands each child of c to known once per name; the rest go to Extra
// under prefix.
func (p *inboundParser) containerAt(prefix string, c *node, known func(*node) bool) {
	if c.text != "" {
		p.extra[strings.TrimSuffix(prefix, ".")] = c.text
	}
	for _, k := range c.children {
		if !known(k) {
			flatten(prefix, k, p.extra)
		}
	}
}

// DedupKey is the key that makes WeChat's retries of one callback a single event
// (the Nats-Msg-Id): the MsgId when the message has one, else the first 32 hex
// characters of the SHA-256 of the plain XML. A retry carries the same plain XML,
// while FromUserName+CreateTime alone would merge distinct events of one second.
// The key is unique per app only: callers that mix apps should prefix it.
func DedupKey(d schemas.EventData, plainXML []byte) string {
	if d.MsgID != "" {
		return d.MsgID
	}
	sum := sha256.Sum256(plainXML)
	return hex.EncodeToString(sum[:16])
}

// EventType names the event for subjects and the CloudEvents type: the lower-cased
// MsgType ("text", "voice", ...) or "event.<event>" ("event.click",
// "event.template_card_event"). Characters that cannot appear in a NATS subject
// token become "_"; a missing name becomes "unknown".
func EventType(d schemas.EventData) string {
	if strings.EqualFold(d.MsgType, "event") {
		return "event." + token(d.Event)
	}
	return token(d.MsgType)
}

func token(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return "unknown"
	}
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}
