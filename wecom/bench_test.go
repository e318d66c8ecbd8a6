package wecom

import (
	"strconv"
	"testing"
	"time"
)

// Benchmarks of the callback hot path: what the gateway does for every
// message before it publishes (docs/benchmarks.md).

const (
	benchToken  = "QDG6eK"
	benchAESKey = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
	benchCorp   = "ww0123456789abcdef"
)

func benchPlain(b *testing.B) []byte {
	b.Helper()
	plain, err := BuildText(benchCorp, "u0001", 1000002, time.Now().Unix(), "echo 订单 1001 的物流到哪里了", "7000000000000000001")
	if err != nil {
		b.Fatal(err)
	}
	return plain
}

func benchCrypter(b *testing.B) *Crypter {
	b.Helper()
	c, err := NewCrypter(benchToken, benchAESKey, benchCorp)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func BenchmarkDecrypt(b *testing.B) {
	c := benchCrypter(b)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	body, sig, err := c.EncryptCallbackAgent(benchPlain(b), ts, "1234567890", "1000002")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Decrypt(sig, ts, "1234567890", body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncryptCallback(b *testing.B) {
	c := benchCrypter(b)
	plain := benchPlain(b)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.EncryptCallbackAgent(plain, ts, "1234567890", "1000002"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseInbound(b *testing.B) {
	plain := benchPlain(b)
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseInbound(plain); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDedupKeyEvent(b *testing.B) {
	// Events carry no MsgId: the key is a hash of the plain XML.
	plain, err := BuildEvent(benchCorp, "u0001", 1000002, time.Now().Unix(), "click", "MENU_1", nil)
	if err != nil {
		b.Fatal(err)
	}
	d, err := ParseInbound(plain)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = DedupKey(d, plain)
	}
}

// BenchmarkDecryptXMLFallback is Decrypt on an envelope the fast path leaves
// to encoding/xml (a declaration in front): the cost of an unusual sender.
func BenchmarkDecryptXMLFallback(b *testing.B) {
	c := benchCrypter(b)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	body, sig, err := c.EncryptCallbackAgent(benchPlain(b), ts, "1234567890", "1000002")
	if err != nil {
		b.Fatal(err)
	}
	body = append([]byte(`<?xml version="1.0"?>`), body...)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Decrypt(sig, ts, "1234567890", body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseInboundNested is an event with nested elements
// (scancode_waitmsg with ScanCodeInfo).
func BenchmarkParseInboundNested(b *testing.B) {
	plain, err := BuildEvent(benchCorp, "u0001", 1000002, time.Now().Unix(), "scancode_waitmsg", "SCAN_1",
		map[string]string{"ScanCodeInfo.ScanType": "qrcode", "ScanCodeInfo.ScanResult": "https://example.com/x?y=1"})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseInbound(plain); err != nil {
			b.Fatal(err)
		}
	}
}
