package wecom

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// bigEnvelope is an unauthenticated body of about 1 MiB holding n elements
// besides <Encrypt>: what a forger posts to make the hub parse before it
// checks the signature.
func bigEnvelope(n int, nested bool) []byte {
	var b bytes.Buffer
	b.WriteString("<xml><Encrypt>abc</Encrypt>")
	for range n {
		if nested {
			b.WriteString("<a>")
		} else {
			b.WriteString("<a/>")
		}
	}
	if nested {
		b.WriteString(strings.Repeat("</a>", n))
	}
	b.WriteString("</xml>")
	return b.Bytes()
}

// A forged envelope is refused after a bounded amount of parsing, whatever
// its element count or depth: before, encoding/xml read all of it (82 ms for
// 260k elements) before the signature was checked.
func TestDecryptRefusesAHugeEnvelopeCheaply(t *testing.T) {
	c, err := NewCrypter("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "ww0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		body []byte
	}{
		{"260k flat elements", bigEnvelope(260_000, false)},
		{"100k nested elements", bigEnvelope(100_000, true)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			allocs := testing.AllocsPerRun(3, func() { _, err = c.Decrypt("forged", "1", "n", tt.body) })
			if !errors.Is(err, ErrXML) {
				t.Fatalf("err = %v, want ErrXML", err)
			}
			// Parsing every element costs several allocations each; the capped
			// read stops after maxEnvelopeElements.
			if allocs > 50*maxEnvelopeElements {
				t.Fatalf("%.0f allocations to refuse %d bytes, want at most %d", allocs, len(tt.body), 50*maxEnvelopeElements)
			}
		})
	}
}

func TestReadEnvelope(t *testing.T) {
	tests := []struct {
		name, given, want string
		wantErr           bool
	}{
		{name: "declaration", given: `<?xml version="1.0"?><xml><ToUserName>a</ToUserName><Encrypt>y</Encrypt></xml>`, want: "y"},
		{name: "entity", given: "<xml><Encrypt>a&amp;b</Encrypt></xml>", want: "a&b"},
		{name: "repeated", given: "<xml><Encrypt>a</Encrypt><Encrypt>b</Encrypt></xml>", wantErr: true},
		{name: "nested Encrypt", given: "<xml><A><Encrypt>y</Encrypt></A></xml>", wantErr: true},
		{name: "elements inside Encrypt", given: "<xml><Encrypt>y<b/></Encrypt></xml>", wantErr: true},
		{name: "mismatched", given: "<xml><A></B><Encrypt>y</Encrypt></xml>", wantErr: true},
		{name: "wrong root", given: "<x><Encrypt>y</Encrypt></x>", wantErr: true},
		{name: "too deep", given: "<xml><Encrypt>y</Encrypt><a><b><c><d></d></c></b></a></xml>", wantErr: true},
		{name: "unterminated", given: "<xml><Encrypt>y</Encrypt>", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readEnvelope([]byte(tt.given))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("readEnvelope = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrXML) {
				t.Fatalf("err = %v, want ErrXML", err)
			}
		})
	}
}

// The authenticated plain XML is bounded too (a compromised or buggy sender).
func TestParseInboundRefusesTooManyElements(t *testing.T) {
	doc := "<xml><MsgType>text</MsgType>" + strings.Repeat("<a>1</a>", maxElements) + "</xml>"
	if _, err := ParseInbound([]byte(doc)); !errors.Is(err, ErrXML) || !strings.Contains(err.Error(), "elements") {
		t.Fatalf("err = %v, want ErrXML naming the element cap", err)
	}
}
