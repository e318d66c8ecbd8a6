package wecom

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"os"
	"sort"
	"strings"
	"testing"
)

// officialSample is WeCom's published callback encryption sample (testdata copy).
type officialSample struct {
	Token          string `json:"token"`
	ReceiveID      string `json:"receive_id"`
	EncodingAESKey string `json:"encoding_aes_key"`
	VerifyURL      struct {
		MsgSignature string `json:"msg_signature"`
		Timestamp    string `json:"timestamp"`
		Nonce        string `json:"nonce"`
		Echostr      string `json:"echostr"`
		Plain        string `json:"plain"`
	} `json:"verify_url"`
	Message struct {
		MsgSignature string `json:"msg_signature"`
		Timestamp    string `json:"timestamp"`
		Nonce        string `json:"nonce"`
		Body         string `json:"body"`
		Plain        string `json:"plain"`
	} `json:"message"`
}

func loadSample(t testing.TB) officialSample {
	t.Helper()
	raw, err := os.ReadFile("testdata/wecom-official-sample.json")
	if err != nil {
		t.Fatal(err)
	}
	var s officialSample
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func sampleCrypter(t testing.TB, opts ...CrypterOption) (*Crypter, officialSample) {
	t.Helper()
	s := loadSample(t)
	c, err := NewCrypter(s.Token, s.EncodingAESKey, s.ReceiveID, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

func sampleEncrypt(t testing.TB, body string) string {
	t.Helper()
	var env struct {
		Encrypt string `xml:"Encrypt"`
	}
	if err := xml.Unmarshal([]byte(body), &env); err != nil {
		t.Fatal(err)
	}
	return env.Encrypt
}

func TestOfficialSample(t *testing.T) {
	c, s := sampleCrypter(t)
	tests := []struct {
		name      string
		run       func() ([]byte, error)
		want      string
		wantErr   error
		signature func() string
		wantSig   string
	}{
		{
			name: "verify url",
			run: func() ([]byte, error) {
				return c.VerifyURL(s.VerifyURL.MsgSignature, s.VerifyURL.Timestamp, s.VerifyURL.Nonce, s.VerifyURL.Echostr)
			},
			want:      s.VerifyURL.Plain,
			signature: func() string { return c.Signature(s.VerifyURL.Timestamp, s.VerifyURL.Nonce, s.VerifyURL.Echostr) },
			wantSig:   s.VerifyURL.MsgSignature,
		},
		{
			name: "message",
			run: func() ([]byte, error) {
				return c.Decrypt(s.Message.MsgSignature, s.Message.Timestamp, s.Message.Nonce, []byte(s.Message.Body))
			},
			want: s.Message.Plain,
			signature: func() string {
				return c.Signature(s.Message.Timestamp, s.Message.Nonce, sampleEncrypt(t, s.Message.Body))
			},
			wantSig: s.Message.MsgSignature,
		},
		{
			name: "verify url with upper-case signature",
			run: func() ([]byte, error) {
				return c.VerifyURL(strings.ToUpper(s.VerifyURL.MsgSignature), s.VerifyURL.Timestamp, s.VerifyURL.Nonce, s.VerifyURL.Echostr)
			},
			want: s.VerifyURL.Plain,
		},
		{
			name: "verify url with + decoded as space",
			run: func() ([]byte, error) {
				return c.VerifyURL(s.VerifyURL.MsgSignature, s.VerifyURL.Timestamp, s.VerifyURL.Nonce, strings.ReplaceAll(s.VerifyURL.Echostr, "+", " "))
			},
			want: s.VerifyURL.Plain,
		},
		{
			name: "verify url with another timestamp",
			run: func() ([]byte, error) {
				return c.VerifyURL(s.VerifyURL.MsgSignature, "1409659590", s.VerifyURL.Nonce, s.VerifyURL.Echostr)
			},
			wantErr: ErrSignature,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.run()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if string(got) != tt.want {
				t.Errorf("plain = %q, want %q", got, tt.want)
			}
			if tt.signature != nil {
				if got := tt.signature(); got != tt.wantSig {
					t.Errorf("signature = %s, want %s", got, tt.wantSig)
				}
			}
		})
	}
}

// TestOfficialSampleReEncrypt recovers the sample's 16 random bytes with crypto/aes
// directly and checks that Encrypt, fed the same bytes, reproduces WeCom's ciphertext
// exactly, and that EncryptCallbackAgent reproduces the signature.
func TestOfficialSampleReEncrypt(t *testing.T) {
	s := loadSample(t)
	key, err := base64.StdEncoding.DecodeString(s.EncodingAESKey + "=")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, encrypted, plain, ts, nonce, sig string
	}{
		{"echostr", s.VerifyURL.Echostr, s.VerifyURL.Plain, s.VerifyURL.Timestamp, s.VerifyURL.Nonce, s.VerifyURL.MsgSignature},
		{"message", sampleEncrypt(t, s.Message.Body), s.Message.Plain, s.Message.Timestamp, s.Message.Nonce, s.Message.MsgSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct, _ := base64.StdEncoding.DecodeString(tc.encrypted)
			block, _ := aes.NewCipher(key)
			raw := make([]byte, len(ct))
			cipher.NewCBCDecrypter(block, key[:16]).CryptBlocks(raw, ct)
			c, _ := sampleCrypter(t, WithRand(bytes.NewReader(raw[:16])))
			got, err := c.Encrypt([]byte(tc.plain))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.encrypted {
				t.Fatalf("Encrypt = %s\nwant      %s", got, tc.encrypted)
			}
			c, _ = sampleCrypter(t, WithRand(bytes.NewReader(raw[:16])))
			body, sig, err := c.EncryptCallbackAgent([]byte(tc.plain), tc.ts, tc.nonce, "218")
			if err != nil {
				t.Fatal(err)
			}
			if sig != tc.sig {
				t.Errorf("signature = %s, want %s", sig, tc.sig)
			}
			if tc.name == "message" && string(body) != s.Message.Body {
				t.Errorf("callback body = %s\nwant            %s", body, s.Message.Body)
			}
		})
	}
}

// TestHandComputedVector follows the algorithm step by step with the standard
// library only, independently of the package code.
func TestHandComputedVector(t *testing.T) {
	const (
		token     = "tok3n"
		aesKey    = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
		receiveID = "ww0123456789abcdef"
		msg       = "<xml><Content><![CDATA[你好]]></Content></xml>"
		ts        = "1700000000"
		nonce     = "42"
	)
	random := []byte("0123456789abcdef")

	key, err := base64.StdEncoding.DecodeString(aesKey + "=")
	if err != nil || len(key) != 32 {
		t.Fatalf("key: %v (%d bytes)", err, len(key))
	}
	// 16 random bytes | big-endian length | message | receive id
	var plain []byte
	plain = append(plain, random...)
	plain = binary.BigEndian.AppendUint32(plain, uint32(len(msg)))
	plain = append(plain, msg...)
	plain = append(plain, receiveID...)
	// PKCS#7 to 32-byte blocks
	p := 32 - len(plain)%32
	for i := 0; i < p; i++ {
		plain = append(plain, byte(p))
	}
	block, _ := aes.NewCipher(key)
	ct := make([]byte, len(plain))
	cipher.NewCBCEncrypter(block, key[:16]).CryptBlocks(ct, plain)
	wantEnc := base64.StdEncoding.EncodeToString(ct)
	parts := []string{token, ts, nonce, wantEnc}
	sort.Strings(parts)
	sum := sha1.Sum([]byte(strings.Join(parts, "")))
	wantSig := hex.EncodeToString(sum[:])

	c, err := NewCrypter(token, aesKey, receiveID, WithRand(bytes.NewReader(random)))
	if err != nil {
		t.Fatal(err)
	}
	gotEnc, err := c.Encrypt([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if gotEnc != wantEnc {
		t.Fatalf("Encrypt = %s, want %s", gotEnc, wantEnc)
	}
	if got := c.Signature(ts, nonce, wantEnc); got != wantSig {
		t.Fatalf("Signature = %s, want %s", got, wantSig)
	}
	gotMsg, gotID, err := c.DecryptText(wantEnc)
	if err != nil || string(gotMsg) != msg || gotID != receiveID {
		t.Fatalf("DecryptText = %q, %q, %v", gotMsg, gotID, err)
	}
}

func TestRoundTrip(t *testing.T) {
	c, _ := sampleCrypter(t)
	tests := []struct {
		name  string
		given []byte
	}{
		{"empty", nil},
		{"one byte", []byte("x")},
		{"exact block after header", bytes.Repeat([]byte("a"), 32*3-20-len("wx5823bf96d3bd56c7"))},
		{"utf-8", []byte("<xml><Content><![CDATA[免打扰 22:00-08:00]]></Content></xml>")},
		{"large", bytes.Repeat([]byte("0123456789"), 10000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, sig, err := c.EncryptCallback(tt.given, "1700000000", "nonce")
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Decrypt(sig, "1700000000", "nonce", body)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.given) {
				t.Errorf("round trip = %q, want %q", got, tt.given)
			}

			reply, err := c.EncryptReply(tt.given, "1700000001", "n]]>2")
			if err != nil {
				t.Fatal(err)
			}
			var r struct {
				Encrypt      string `xml:"Encrypt"`
				MsgSignature string `xml:"MsgSignature"`
				TimeStamp    string `xml:"TimeStamp"`
				Nonce        string `xml:"Nonce"`
			}
			if err := xml.Unmarshal(reply, &r); err != nil {
				t.Fatalf("reply XML: %v\n%s", err, reply)
			}
			if r.TimeStamp != "1700000001" || r.Nonce != "n]]>2" {
				t.Errorf("reply timestamp/nonce = %q/%q", r.TimeStamp, r.Nonce)
			}
			got, err = c.Decrypt(r.MsgSignature, r.TimeStamp, r.Nonce, reply)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.given) {
				t.Errorf("reply round trip = %q, want %q", got, tt.given)
			}
		})
	}
}

func TestEncryptIsRandomized(t *testing.T) {
	c, _ := sampleCrypter(t)
	a, _ := c.Encrypt([]byte("same"))
	b, _ := c.Encrypt([]byte("same"))
	if a == b {
		t.Fatal("two encryptions of the same message are equal; random prefix missing")
	}
}

// rawEncrypt encrypts arbitrary bytes (already padded by the caller) with the
// sample key, to craft ciphertexts that break one rule at a time.
func rawEncrypt(t *testing.T, plain []byte) string {
	t.Helper()
	s := loadSample(t)
	key, _ := base64.StdEncoding.DecodeString(s.EncodingAESKey + "=")
	block, _ := aes.NewCipher(key)
	out := make([]byte, len(plain))
	cipher.NewCBCEncrypter(block, key[:16]).CryptBlocks(out, plain)
	return base64.StdEncoding.EncodeToString(out)
}

func frame(msg, receiveID string, declared uint32) []byte {
	b := make([]byte, 16, 64)
	b = binary.BigEndian.AppendUint32(b, declared)
	b = append(b, msg...)
	return append(b, receiveID...)
}

func zeroPadded(b []byte) []byte {
	return append(b, make([]byte, 32-len(b)%32)...)
}

func TestDecryptFailures(t *testing.T) {
	c, s := sampleCrypter(t)
	other, err := NewCrypter(s.Token, s.EncodingAESKey, "ww_somebody_else")
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := other.Encrypt([]byte("<xml/>"))

	tests := []struct {
		name    string
		given   string // the Encrypt text
		sig     string // "" = compute a valid signature
		body    string // "" = wrap given in <xml><Encrypt>
		wantErr error
	}{
		{name: "forged signature", given: sampleEncrypt(t, s.Message.Body), sig: strings.Repeat("0", 40), wantErr: ErrSignature},
		{name: "signature of other text", given: sampleEncrypt(t, s.Message.Body), sig: s.VerifyURL.MsgSignature, wantErr: ErrSignature},
		{name: "bad base64", given: "not*base64!", wantErr: ErrBase64},
		{name: "empty ciphertext", given: "", wantErr: ErrLength},
		{name: "not a block multiple", given: base64.StdEncoding.EncodeToString(make([]byte, 20)), wantErr: ErrLength},
		{name: "pad byte zero", given: rawEncrypt(t, zeroPadded(frame("hi", s.ReceiveID, 2))), wantErr: ErrPadding},
		{name: "pad byte over 32", given: rawEncrypt(t, bytes.Repeat([]byte{33}, 64)), wantErr: ErrPadding},
		{name: "inconsistent pad bytes", given: rawEncrypt(t, append(bytes.Repeat([]byte{1}, 60), 3, 9, 3, 4)), wantErr: ErrPadding},
		{name: "wrong receive id", given: foreign, wantErr: ErrReceiveID},
		{name: "declared length too long", given: rawEncrypt(t, pad(frame("hello", s.ReceiveID, 500))), wantErr: ErrLength},
		{name: "shorter than header", given: rawEncrypt(t, bytes.Repeat([]byte{16}, 32)), wantErr: ErrLength},
		{name: "malformed XML", body: "<xml><Encrypt>abc</Encrypt", sig: "x", wantErr: ErrXML},
		{name: "no Encrypt element", body: "<xml><ToUserName>a</ToUserName></xml>", sig: "x", wantErr: ErrXML},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			if body == "" {
				body = "<xml><Encrypt><![CDATA[" + tt.given + "]]></Encrypt></xml>"
			}
			sig := tt.sig
			if sig == "" {
				sig = c.Signature("1", "2", tt.given)
			}
			got, err := c.Decrypt(sig, "1", "2", []byte(body))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != nil {
				t.Errorf("plain = %q, want nil", got)
			}
			if tt.body == "" && tt.given != "" {
				// VerifyURL shares the checks.
				if _, err := c.VerifyURL(sig, "1", "2", tt.given); !errors.Is(err, tt.wantErr) {
					t.Errorf("VerifyURL err = %v, want %v", err, tt.wantErr)
				}
			}
		})
	}
}

func TestNewCrypterFailures(t *testing.T) {
	s := loadSample(t)
	tests := []struct {
		name                  string
		token, key, receiveID string
		wantErr               error
	}{
		{"ok", s.Token, s.EncodingAESKey, s.ReceiveID, nil},
		{"short key", s.Token, s.EncodingAESKey[:42], s.ReceiveID, ErrKey},
		{"long key", s.Token, s.EncodingAESKey + "A", s.ReceiveID, ErrKey},
		{"key not base64", s.Token, "*" + s.EncodingAESKey[1:], s.ReceiveID, ErrKey},
		{"empty token", "", s.EncodingAESKey, s.ReceiveID, ErrConfig},
		{"empty receive id", s.Token, s.EncodingAESKey, "", ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCrypter(tt.token, tt.key, tt.receiveID)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), tt.key) && tt.key != "" {
				t.Errorf("error leaks the key: %v", err)
			}
			if (err == nil) != (c != nil) {
				t.Errorf("crypter = %v with err %v", c, err)
			}
		})
	}
}

func TestEncryptRandomFailure(t *testing.T) {
	c, _ := sampleCrypter(t, WithRand(bytes.NewReader([]byte("short"))))
	if _, err := c.Encrypt([]byte("x")); err == nil {
		t.Fatal("Encrypt with an exhausted random source succeeded")
	}
}

func FuzzDecrypt(f *testing.F) {
	c, s := sampleCrypter(f)
	f.Add(s.Message.MsgSignature, s.Message.Timestamp, s.Message.Nonce, []byte(s.Message.Body))
	f.Add(s.VerifyURL.MsgSignature, s.VerifyURL.Timestamp, s.VerifyURL.Nonce, []byte("<xml><Encrypt>"+s.VerifyURL.Echostr+"</Encrypt></xml>"))
	f.Add("", "", "", []byte("<xml><Encrypt></Encrypt></xml>"))
	f.Add("x", "1", "2", []byte("<xml"))
	f.Fuzz(func(t *testing.T, sig, ts, nonce string, body []byte) {
		if plain, err := c.Decrypt(sig, ts, nonce, body); err == nil && plain == nil {
			t.Fatal("nil plain without error")
		}
		// Skip the signature so the fuzzer reaches the decryption checks too.
		if raw, err := readEnvelope(body); err == nil {
			enc := strings.TrimSpace(raw)
			if _, err := c.Decrypt(c.Signature(ts, nonce, enc), ts, nonce, body); err != nil &&
				!errors.Is(err, ErrBase64) && !errors.Is(err, ErrLength) && !errors.Is(err, ErrPadding) && !errors.Is(err, ErrReceiveID) {
				t.Fatalf("unclassified error: %v", err)
			}
			_, _, _ = c.DecryptText(enc)
		}
	})
}

// envelope is the encrypted callback body as encoding/xml reads it: the
// reference the fast path is held to.
type envelope struct {
	XMLName xml.Name `xml:"xml"`
	Encrypt *string  `xml:"Encrypt"`
}

// FuzzScanEnvelope: whatever Decrypt's fast path accepts, encoding/xml
// accepts too, with the same <Encrypt> text.
func FuzzScanEnvelope(f *testing.F) {
	for _, s := range []string{
		"<xml><ToUserName><![CDATA[ww1]]></ToUserName><Encrypt><![CDATA[abc+/=]]></Encrypt><AgentID><![CDATA[1]]></AgentID></xml>",
		"<xml>\n  <Encrypt>abc</Encrypt>\n</xml>\n",
		"<xml><Encrypt></Encrypt></xml>",
		"<xml><Encrypt><![CDATA[a]]></Encrypt><Encrypt>b</Encrypt></xml>",
		"<xml><Encrypt>a&amp;b</Encrypt></xml>",
		"<xml><A></B><Encrypt>x</Encrypt></xml>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := scanEnvelope(body)
		if !ok {
			return
		}
		var env envelope
		if err := xml.Unmarshal(body, &env); err != nil {
			t.Fatalf("fast path accepted %q; encoding/xml: %v", body, err)
		}
		if env.Encrypt == nil || *env.Encrypt != got {
			t.Fatalf("fast path read %q from %q; encoding/xml %v", got, body, env.Encrypt)
		}
		if slow, err := readEnvelope(body); (err != nil && !errors.Is(err, ErrXML)) || (err == nil && slow != got) {
			t.Fatalf("fast path read %q from %q; readEnvelope %q, %v", got, body, slow, err)
		}
	})
}

func TestScanEnvelope(t *testing.T) {
	tests := []struct {
		name, given, want string
		wantOK            bool
	}{
		{name: "wecom app", given: "<xml><ToUserName><![CDATA[ww1]]></ToUserName><Encrypt><![CDATA[q+/=]]></Encrypt><AgentID><![CDATA[1]]></AgentID></xml>", want: "q+/=", wantOK: true},
		{name: "indented, plain text", given: "\n<xml>\n\t<Encrypt>abc</Encrypt>\n</xml>\n", want: "abc", wantOK: true},
		{name: "no Encrypt", given: "<xml><ToUserName>a</ToUserName></xml>"},
		{name: "repeated Encrypt", given: "<xml><Encrypt>a</Encrypt><Encrypt>b</Encrypt></xml>"},
		{name: "entity", given: "<xml><Encrypt>a&amp;</Encrypt></xml>"},
		{name: "mismatched end tag", given: "<xml><A>x</B><Encrypt>y</Encrypt></xml>"},
		{name: "nested", given: "<xml><A><Encrypt>y</Encrypt></A></xml>"},
		{name: "attribute", given: `<xml><Encrypt a="1">y</Encrypt></xml>`},
		{name: "declaration", given: `<?xml version="1.0"?><xml><Encrypt>y</Encrypt></xml>`},
		{name: "unterminated", given: "<xml><Encrypt>abc</Encrypt"},
		{name: "too short", given: "<xml>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := scanEnvelope([]byte(tt.given))
			if ok != tt.wantOK || got != tt.want {
				t.Fatalf("scanEnvelope = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
