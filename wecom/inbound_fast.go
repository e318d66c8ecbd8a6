package wecom

import (
	"bytes"
	"unicode/utf8"
)

// scanTree is parseTree's fast path for the documents WeChat sends: elements
// without attributes holding text (plain UTF-8 or CDATA, no entities, no
// "\r") and other elements, white space around the root. It returns the same
// tree encoding/xml gives, or nil for anything else (comments, declarations,
// entities, attributes, errors), which parseTree then reads with encoding/xml:
// the parser stays the judge of what is well-formed (FuzzScanTree).
func scanTree(doc []byte) *node {
	s := trimXMLSpace(doc)
	if len(s) == 0 || s[0] != '<' {
		return nil
	}
	// Every element starts with '<': the arena never grows, so pointers into it stay valid.
	// At most maxElements: past that decodeTree words the error.
	arena := make([]node, 0, min(bytes.Count(s, []byte("<")), maxElements))
	var stack []openElem
	var root *node
	for len(s) > 0 {
		if s[0] != '<' {
			i := bytes.IndexByte(s, '<')
			if i < 0 || len(stack) == 0 {
				return nil // text after the root: the parser decides
			}
			t := s[:i]
			if !plainXMLText(t) || bytes.Contains(t, []byte("]]>")) {
				return nil
			}
			top := &stack[len(stack)-1]
			top.add(t)
			s = s[i:]
			continue
		}
		switch {
		case bytes.HasPrefix(s, []byte("<![CDATA[")):
			if len(stack) == 0 {
				return nil
			}
			s = s[len("<![CDATA["):]
			i := bytes.Index(s, []byte("]]>"))
			if i < 0 || !plainXMLText(s[:i]) {
				return nil
			}
			stack[len(stack)-1].add(s[:i])
			s = s[i+len("]]>"):]
		case len(s) > 1 && s[1] == '/':
			end := 2 + nameLen(s[2:])
			if len(stack) == 0 || end >= len(s) || s[end] != '>' {
				return nil
			}
			top := stack[len(stack)-1]
			if string(s[2:end]) != top.n.name {
				return nil
			}
			top.close()
			stack = stack[:len(stack)-1]
			s = s[end+1:]
			if len(stack) == 0 {
				if len(trimXMLSpace(s)) != 0 {
					return nil // a second root or trailing text
				}
				s = nil
			}
		default:
			end := 1 + nameLen(s[1:])
			if end == 1 || end >= len(s) || len(stack) >= maxDepth || len(arena) == maxElements || (root != nil && len(stack) == 0) {
				return nil
			}
			selfClosing := s[end] == '/' && end+1 < len(s) && s[end+1] == '>'
			if s[end] != '>' && !selfClosing {
				return nil
			}
			arena = append(arena, node{name: string(s[1:end]), index: -1})
			n := &arena[len(arena)-1]
			if root == nil {
				root = n
			} else {
				parent := stack[len(stack)-1].n
				parent.children = append(parent.children, n)
			}
			if selfClosing {
				s = s[end+2:]
				if len(stack) == 0 {
					return nil // <xml/>: no MsgType anyway; the parser words the error
				}
				continue
			}
			stack = append(stack, openElem{n: n})
			s = s[end+1:]
		}
	}
	if root == nil || len(stack) != 0 || root.name != "xml" {
		return nil
	}
	indexRepeats(root)
	return root
}

// openElem is an element whose end tag is still ahead.
type openElem struct {
	n     *node
	text  []byte // the text so far: a slice of the document while it is one piece
	parts int
}

func (o *openElem) add(t []byte) {
	switch o.parts {
	case 0:
		o.text = t
	case 1:
		o.text = append(append(make([]byte, 0, len(o.text)+len(t)), o.text...), t...)
	default:
		o.text = append(o.text, t...)
	}
	o.parts++
}

// close sets the node's text as parseTree does: white space between child
// elements is indentation, not text.
func (o *openElem) close() {
	if len(o.n.children) > 0 && len(bytes.TrimSpace(o.text)) == 0 {
		return
	}
	o.n.text = string(o.text)
}

// nameLen is the length of the XML name at the start of b, restricted to
// [A-Za-z_][A-Za-z0-9_]* (WeChat's element names); 0 if none.
func nameLen(b []byte) int {
	if len(b) == 0 || !(b[0] == '_' || 'a' <= b[0] && b[0] <= 'z' || 'A' <= b[0] && b[0] <= 'Z') {
		return 0
	}
	i := 1
	for i < len(b) && isNameByte(b[i]) {
		i++
	}
	return i
}

// plainXMLText: valid UTF-8 of XML characters, nothing to unescape or normalize.
func plainXMLText(b []byte) bool {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 && c != '\t' && c != '\n') || c == '&' || c == '<' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if (r == utf8.RuneError && size == 1) || r == 0xFFFE || r == 0xFFFF {
			return false
		}
		i += size
	}
	return true
}
