package wecom

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func dumpTree(n *node) string {
	var b strings.Builder
	var walk func(n *node, depth int)
	walk = func(n *node, depth int) {
		fmt.Fprintf(&b, "%s%s[%d]=%q\n", strings.Repeat(" ", depth), n.name, n.index, n.text)
		for _, c := range n.children {
			walk(c, depth+1)
		}
	}
	walk(n, 0)
	return b.String()
}

// FuzzScanTree: whatever ParseInbound's fast path accepts, encoding/xml
// accepts too, as the same tree.
func FuzzScanTree(f *testing.F) {
	for _, tt := range inboundCases {
		f.Add([]byte(tt.given))
	}
	f.Add([]byte("<xml>\n <A> x <![CDATA[y]]> z </A><A/><B><C>1</C>\u3000</B></xml>\n"))
	f.Add([]byte("<xml><A>]]></A></xml>"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		fast := scanTree(doc)
		if fast == nil {
			return
		}
		slow, err := decodeTree(doc)
		if err != nil {
			t.Fatalf("fast path accepted %q; encoding/xml: %v", doc, err)
		}
		if a, b := dumpTree(fast), dumpTree(slow); a != b {
			t.Fatalf("trees differ for %q:\nfast\n%s\nencoding/xml\n%s", doc, a, b)
		}
	})
}

func TestScanTreeTakesWeChatDocuments(t *testing.T) {
	taken := 0
	for _, tt := range inboundCases {
		if scanTree([]byte(tt.given)) != nil {
			taken++
		}
	}
	// The samples include odd documents on purpose; most are WeChat's plain shape.
	if taken < len(inboundCases)*2/3 {
		t.Fatalf("fast path took %d of %d samples", taken, len(inboundCases))
	}
	t.Logf("fast path took %d of %d samples", taken, len(inboundCases))
}

// TestParseInboundSlowPath: a declaration sends every sample through
// encoding/xml instead; the results must not change.
func TestParseInboundSlowPath(t *testing.T) {
	for _, tt := range inboundCases {
		t.Run(tt.name, func(t *testing.T) {
			doc := []byte(`<?xml version="1.0" encoding="UTF-8"?>` + tt.given)
			if scanTree(doc) != nil {
				t.Fatal("fast path took a document with a declaration")
			}
			got, err := ParseInbound(doc)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseInbound =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}
