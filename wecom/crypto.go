// Package wecom implements the WeChat side protocol that wxhub speaks: the callback
// crypto shared by WeCom apps and Official Accounts, the callback XML (parsing into
// schemas.EventData and building it back, for the simulator), and a client of the
// WeCom server API. It knows nothing of NATS or of the hub's other packages.
package wecom

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Sentinel errors of the callback crypto. Every error the Crypter returns wraps
// exactly one of them, so a caller can tell which check failed with errors.Is.
var (
	ErrSignature = errors.New("wecom: signature mismatch")
	ErrBase64    = errors.New("wecom: invalid base64")
	ErrPadding   = errors.New("wecom: invalid PKCS#7 padding")
	ErrReceiveID = errors.New("wecom: receive id is not ours")
	ErrXML       = errors.New("wecom: malformed XML")
	ErrLength    = errors.New("wecom: invalid length")
	ErrKey       = errors.New("wecom: invalid EncodingAESKey")
	ErrConfig    = errors.New("wecom: invalid crypter configuration")
)

const (
	// blockSize is the PKCS#7 block size WeChat pads to: 32 bytes, not AES's 16.
	blockSize = 32
	// randomLen is the number of random bytes that open every plain text.
	randomLen = 16
	// encodingAESKeyLen is the length of the EncodingAESKey shown in the admin console.
	encodingAESKeyLen = 43
)

// Crypter verifies, decrypts and encrypts WeChat callbacks (WeCom apps and
// Official Accounts use the same scheme). It is safe for concurrent use as long
// as its random source is (crypto/rand is).
type Crypter struct {
	token     string
	key       []byte
	block     cipher.Block
	receiveID string
	rand      io.Reader
}

// CrypterOption customizes a Crypter.
type CrypterOption func(*Crypter)

// WithRand sets the source of the 16 random bytes that open every encrypted
// message (default crypto/rand). Tests inject a fixed reader to get known ciphertexts.
func WithRand(r io.Reader) CrypterOption {
	return func(c *Crypter) { c.rand = r }
}

// NewCrypter builds a Crypter from an app's callback settings: the token, the
// 43-character EncodingAESKey and the receive id (the corp id for a WeCom app, the
// appid for an Official Account). Messages for another receive id are rejected.
func NewCrypter(token, encodingAESKey, receiveID string, opts ...CrypterOption) (*Crypter, error) {
	if token == "" {
		return nil, fmt.Errorf("%w: token is empty", ErrConfig)
	}
	if receiveID == "" {
		return nil, fmt.Errorf("%w: receive id is empty", ErrConfig)
	}
	if len(encodingAESKey) != encodingAESKeyLen {
		return nil, fmt.Errorf("%w: %d characters, want %d", ErrKey, len(encodingAESKey), encodingAESKeyLen)
	}
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil {
		// The base64 error names a position, never the key itself.
		return nil, fmt.Errorf("%w: not base64: %v", ErrKey, err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("%w: decodes to %d bytes, want 32", ErrKey, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	c := &Crypter{token: token, key: key, block: block, receiveID: receiveID, rand: rand.Reader}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// ReceiveID is the corp id or appid this Crypter accepts and encrypts for.
func (c *Crypter) ReceiveID() string { return c.receiveID }

// Signature is the callback signature: the lower-case hex SHA1 of the token,
// timestamp, nonce and encrypted text, sorted and concatenated.
func (c *Crypter) Signature(timestamp, nonce, encrypted string) string {
	sum := c.signature(timestamp, nonce, encrypted)
	return string(sum[:])
}

// signature is Signature into an array: the callback path verifies every
// request, so it hashes without joining or sorting on the heap.
func (c *Crypter) signature(timestamp, nonce, encrypted string) (hexSum [2 * sha1.Size]byte) {
	parts := [4]string{c.token, timestamp, nonce, encrypted}
	slices.Sort(parts[:])
	h := sha1.New()
	for _, p := range parts {
		_, _ = io.WriteString(h, p)
	}
	var sum [sha1.Size]byte
	hex.Encode(hexSum[:], h.Sum(sum[:0]))
	return hexSum
}

// verify compares signatures in constant time so that a forger learns nothing
// from how long the rejection took. Upper-case hex is accepted.
func (c *Crypter) verify(msgSignature, timestamp, nonce, encrypted string) error {
	want := c.signature(timestamp, nonce, encrypted)
	if len(msgSignature) != len(want) {
		return ErrSignature
	}
	var got [len(want)]byte
	for i := range got {
		b := msgSignature[i]
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		got[i] = b
	}
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return ErrSignature
	}
	return nil
}

// VerifyURL answers WeChat's URL-verification GET: it checks the signature,
// decrypts echostr, checks the receive id and returns the plain echostr, which the
// handler writes back as the response body.
//
// A "+" of echostr that reached us as a space (an unescaped "+" in the query
// string, decoded as form data) is put back: base64 never holds spaces.
func (c *Crypter) VerifyURL(msgSignature, timestamp, nonce, echostr string) ([]byte, error) {
	echostr = strings.ReplaceAll(echostr, " ", "+")
	if err := c.verify(msgSignature, timestamp, nonce, echostr); err != nil {
		return nil, fmt.Errorf("wecom: verify url: %w", err)
	}
	plain, err := c.decryptOwn(echostr)
	if err != nil {
		return nil, fmt.Errorf("wecom: verify url: %w", err)
	}
	return plain, nil
}

// Bounds of the encrypted envelope, read before the signature is checked: WeChat
// sends <xml> with three flat children (ToUserName, Encrypt, AgentID). Anything
// larger is refused after this many elements, so an unauthenticated body costs
// a bounded amount of parsing whatever its size.
const (
	maxEnvelopeElements = 64
	maxEnvelopeDepth    = 4
)

// Decrypt verifies and decrypts a callback POST body (<xml><Encrypt>..</Encrypt></xml>)
// and returns the plain XML of the message or event. Only the Encrypt element is
// read (with caps on elements and depth) before the signature is checked; the
// plain XML is parsed by the caller once it is authentic.
func (c *Crypter) Decrypt(msgSignature, timestamp, nonce string, body []byte) ([]byte, error) {
	encrypted, ok := scanEnvelope(body)
	if !ok {
		// Anything but the plain shape WeChat sends goes through the XML
		// tokenizer, which has the last word on what is well-formed.
		var err error
		if encrypted, err = readEnvelope(body); err != nil {
			return nil, fmt.Errorf("wecom: decrypt: %w", err)
		}
	}
	encrypted = strings.TrimSpace(encrypted)
	if err := c.verify(msgSignature, timestamp, nonce, encrypted); err != nil {
		return nil, fmt.Errorf("wecom: decrypt: %w", err)
	}
	plain, err := c.decryptOwn(encrypted)
	if err != nil {
		return nil, fmt.Errorf("wecom: decrypt: %w", err)
	}
	return plain, nil
}

// readEnvelope returns the text of the one <Encrypt> child of the root <xml>,
// reading tokens only up to maxEnvelopeElements elements and maxEnvelopeDepth
// levels. Errors wrap ErrXML.
func readEnvelope(body []byte) (string, error) {
	dec := xml.NewDecoder(bytes.NewReader(body))
	var (
		depth, elements int
		encrypt         strings.Builder
		inEncrypt       bool
		found, rooted   bool
	)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrXML, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			elements++
			depth++
			switch {
			case elements > maxEnvelopeElements:
				return "", fmt.Errorf("%w: envelope has more than %d elements", ErrXML, maxEnvelopeElements)
			case depth > maxEnvelopeDepth:
				return "", fmt.Errorf("%w: envelope nested deeper than %d", ErrXML, maxEnvelopeDepth)
			case depth == 1 && (rooted || t.Name.Local != "xml"):
				return "", fmt.Errorf("%w: envelope root <%s>, want one <xml>", ErrXML, t.Name.Local)
			case depth == 1:
				rooted = true
			case inEncrypt:
				return "", fmt.Errorf("%w: <Encrypt> holds elements", ErrXML)
			case depth == 2 && t.Name.Local == "Encrypt":
				if found {
					return "", fmt.Errorf("%w: <Encrypt> repeated", ErrXML)
				}
				found, inEncrypt = true, true
			}
		case xml.EndElement:
			if depth == 0 {
				return "", fmt.Errorf("%w: unexpected end tag </%s>", ErrXML, t.Name.Local)
			}
			depth--
			inEncrypt = false
		case xml.CharData:
			if inEncrypt {
				encrypt.Write(t)
			}
		}
	}
	if depth != 0 || !rooted {
		return "", fmt.Errorf("%w: unterminated or empty envelope", ErrXML)
	}
	if !found {
		return "", fmt.Errorf("%w: no <Encrypt> element", ErrXML)
	}
	return encrypt.String(), nil
}

// scanEnvelope is Decrypt's fast path: the envelope as WeChat sends it, a
// flat <xml> of elements holding one CDATA section or plain text (printable
// ASCII, no entities), exactly one of them <Encrypt>. It returns Encrypt's
// text, or ok=false for anything else, which the XML parser then reads. What
// it accepts, encoding/xml accepts too, with the same text (FuzzScanEnvelope).
func scanEnvelope(body []byte) (encrypt string, ok bool) {
	s := trimXMLSpace(body)
	if len(s) < len("<xml></xml>") || !bytes.HasPrefix(s, []byte("<xml>")) || !bytes.HasSuffix(s, []byte("</xml>")) {
		return "", false
	}
	s = s[len("<xml>") : len(s)-len("</xml>")]
	found := false
	for elements := 1; ; elements++ {
		s = trimXMLSpace(s)
		if len(s) == 0 {
			return encrypt, found
		}
		if elements >= maxEnvelopeElements {
			return "", false // readEnvelope refuses it
		}
		if s[0] != '<' {
			return "", false
		}
		end := 1
		for end < len(s) && isNameByte(s[end]) {
			end++
		}
		if end == 1 || end >= len(s) || s[end] != '>' {
			return "", false
		}
		name := s[1:end]
		s = s[end+1:]
		var text []byte
		if bytes.HasPrefix(s, []byte("<![CDATA[")) {
			s = s[len("<![CDATA["):]
			i := bytes.Index(s, []byte("]]>"))
			if i < 0 {
				return "", false
			}
			text, s = s[:i], s[i+len("]]>"):]
		} else {
			i := bytes.IndexByte(s, '<')
			if i < 0 || bytes.Contains(s[:i], []byte("]]>")) { // "]]>" is an error outside CDATA
				return "", false
			}
			text, s = s[:i], s[i:]
		}
		if !isPlainText(text) || len(s) < len(name)+3 || s[0] != '<' || s[1] != '/' ||
			!bytes.Equal(s[2:2+len(name)], name) || s[2+len(name)] != '>' {
			return "", false
		}
		s = s[len(name)+3:]
		if string(name) == "Encrypt" {
			if found {
				return "", false // repeated: let the parser decide
			}
			encrypt, found = string(text), true
		}
	}
}

func isNameByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_'
}

// isPlainText: printable ASCII, tab and newline; nothing the parser would
// unescape or normalize ("\r\n" becomes "\n").
func isPlainText(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 && c != '\t' && c != '\n') || c > 0x7e || c == '&' || c == '<' {
			return false
		}
	}
	return true
}

func trimXMLSpace(b []byte) []byte {
	return bytes.Trim(b, " \t\r\n")
}

func (c *Crypter) decryptOwn(encrypted string) ([]byte, error) {
	plain, receiveID, err := c.decryptText(encrypted)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(receiveID, []byte(c.receiveID)) != 1 {
		return nil, fmt.Errorf("%w: got %q", ErrReceiveID, receiveID)
	}
	return plain, nil
}

// DecryptText decrypts one base64 ciphertext and returns the message and the
// receive id it was encrypted for. It checks neither the signature nor the
// receive id; VerifyURL and Decrypt do both.
func (c *Crypter) DecryptText(encrypted string) (plain []byte, receiveID string, err error) {
	plain, id, err := c.decryptText(encrypted)
	if err != nil {
		return nil, "", err
	}
	return plain, string(id), nil
}

func (c *Crypter) decryptText(encrypted string) (plain, receiveID []byte, err error) {
	// One buffer: decoded in place, then decrypted in place.
	buf := make([]byte, base64.StdEncoding.DecodedLen(len(encrypted)))
	n, err := base64.StdEncoding.Decode(buf, []byte(encrypted))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrBase64, err)
	}
	buf = buf[:n]
	if len(buf) == 0 || len(buf)%aes.BlockSize != 0 {
		return nil, nil, fmt.Errorf("%w: ciphertext of %d bytes is not a positive multiple of %d", ErrLength, len(buf), aes.BlockSize)
	}
	cipher.NewCBCDecrypter(c.block, c.key[:aes.BlockSize]).CryptBlocks(buf, buf)
	buf, err = unpad(buf)
	if err != nil {
		return nil, nil, err
	}
	if len(buf) < randomLen+4 {
		return nil, nil, fmt.Errorf("%w: plain text of %d bytes is shorter than its %d-byte header", ErrLength, len(buf), randomLen+4)
	}
	size := binary.BigEndian.Uint32(buf[randomLen : randomLen+4])
	rest := buf[randomLen+4:]
	if uint64(size) > uint64(len(rest)) {
		return nil, nil, fmt.Errorf("%w: message length %d exceeds the %d bytes present", ErrLength, size, len(rest))
	}
	return rest[:size:size], rest[size:], nil
}

// unpad removes WeChat's PKCS#7 padding (1..32 bytes, each holding the pad length).
func unpad(b []byte) ([]byte, error) {
	p := int(b[len(b)-1])
	if p < 1 || p > blockSize || p > len(b) {
		return nil, fmt.Errorf("%w: pad length %d", ErrPadding, p)
	}
	for _, v := range b[len(b)-p:] {
		if int(v) != p {
			return nil, fmt.Errorf("%w: inconsistent pad bytes", ErrPadding)
		}
	}
	return b[:len(b)-p], nil
}

func pad(b []byte) []byte {
	p := blockSize - len(b)%blockSize
	return append(b, bytes.Repeat([]byte{byte(p)}, p)...)
}

// Encrypt encrypts a message for this Crypter's receive id and returns the base64
// ciphertext: AES-256-CBC (IV = key[:16]) of 16 random bytes, the 4-byte big-endian
// message length, the message and the receive id, PKCS#7-padded to 32 bytes.
func (c *Crypter) Encrypt(plain []byte) (string, error) {
	if uint64(len(plain)) > uint64(^uint32(0)) {
		return "", fmt.Errorf("wecom: encrypt: %w: message of %d bytes", ErrLength, len(plain))
	}
	buf := make([]byte, randomLen+4, randomLen+4+len(plain)+len(c.receiveID)+blockSize)
	if _, err := io.ReadFull(c.rand, buf[:randomLen]); err != nil {
		return "", fmt.Errorf("wecom: encrypt: random bytes: %w", err)
	}
	binary.BigEndian.PutUint32(buf[randomLen:], uint32(len(plain)))
	buf = append(buf, plain...)
	buf = append(buf, c.receiveID...)
	buf = pad(buf)
	cipher.NewCBCEncrypter(c.block, c.key[:aes.BlockSize]).CryptBlocks(buf, buf)
	return base64.StdEncoding.EncodeToString(buf), nil
}

// EncryptReply encrypts a passive reply (the plain reply XML) into the body the
// callback handler answers with:
// <xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>.
func (c *Crypter) EncryptReply(plain []byte, timestamp, nonce string) ([]byte, error) {
	enc, err := c.Encrypt(plain)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("<xml><Encrypt>")
	writeCDATA(&b, enc)
	b.WriteString("</Encrypt><MsgSignature>")
	writeCDATA(&b, c.Signature(timestamp, nonce, enc))
	b.WriteString("</MsgSignature><TimeStamp>")
	_ = xml.EscapeText(&b, []byte(timestamp))
	b.WriteString("</TimeStamp><Nonce>")
	writeCDATA(&b, nonce)
	b.WriteString("</Nonce></xml>")
	return b.Bytes(), nil
}

// EncryptCallback builds what WeChat posts to a callback URL,
// <xml><ToUserName/><Encrypt/></xml>, and the msg_signature query parameter that
// goes with it. The simulator uses it to play WeChat's side.
func (c *Crypter) EncryptCallback(plain []byte, timestamp, nonce string) (body []byte, msgSignature string, err error) {
	return c.EncryptCallbackAgent(plain, timestamp, nonce, "")
}

// EncryptCallbackAgent is EncryptCallback with the <AgentID> element that WeCom
// adds to an app's callback envelope; an empty agentID leaves it out (Official Accounts).
func (c *Crypter) EncryptCallbackAgent(plain []byte, timestamp, nonce, agentID string) (body []byte, msgSignature string, err error) {
	enc, err := c.Encrypt(plain)
	if err != nil {
		return nil, "", err
	}
	sig := c.Signature(timestamp, nonce, enc)
	var b bytes.Buffer
	b.WriteString("<xml><ToUserName>")
	writeCDATA(&b, c.receiveID)
	b.WriteString("</ToUserName><Encrypt>")
	writeCDATA(&b, enc)
	b.WriteString("</Encrypt>")
	if agentID != "" {
		b.WriteString("<AgentID>")
		writeCDATA(&b, agentID)
		b.WriteString("</AgentID>")
	}
	b.WriteString("</xml>")
	return b.Bytes(), sig, nil
}

// writeCDATA writes s as CDATA; a "]]>" inside s is split across two sections
// so that no input can close the section early.
func writeCDATA(b *bytes.Buffer, s string) {
	b.WriteString("<![CDATA[")
	b.WriteString(strings.ReplaceAll(s, "]]>", "]]]]><![CDATA[>"))
	b.WriteString("]]>")
}
