package fileshare

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"strings"
	"sync"

	"go.uber.org/zap"
)

// LinkPath is where the gateway mounts Links: GET /files/{token}.
const LinkPath = "/files/"

// linkClaims are signed into a link: which file, for whom, until when.
type linkClaims struct {
	Instance string `json:"i"`
	Source   string `json:"s"`
	Path     string `json:"p"`
	User     string `json:"u"`
	Corp     string `json:"c,omitempty"`
	Expires  int64  `json:"e"` // Unix seconds
}

var b64 = base64.RawURLEncoding

// sign makes the token <claims>.<HMAC-SHA256 of claims>, both base64url.
func (c *Connector) sign(cl linkClaims) string {
	raw, _ := json.Marshal(cl)
	p := b64.EncodeToString(raw)
	m := hmac.New(sha256.New, c.secret)
	m.Write([]byte(p))
	return p + "." + b64.EncodeToString(m.Sum(nil))
}

var errBadLink = errors.New("bad link")

func parseToken(tok string) (linkClaims, string, []byte, error) {
	p, sig, ok := strings.Cut(tok, ".")
	if !ok {
		return linkClaims{}, "", nil, errBadLink
	}
	raw, err1 := b64.DecodeString(p)
	mac, err2 := b64.DecodeString(sig)
	var cl linkClaims
	if err1 != nil || err2 != nil || json.Unmarshal(raw, &cl) != nil {
		return linkClaims{}, "", nil, errBadLink
	}
	return cl, p, mac, nil
}

// LinkServer serves the download links of every file share connector started
// in this process (GET /files/{token}). The token carries the instance,
// source, path, the WeCom user id the link was made for and its expiry,
// signed with the instance's link secret. The server checks the signature and
// expiry, then checks again that the user may still see the source (the
// directory may have changed) and that the file is still indexed; any failure
// is the same 404, so a link reveals nothing. WeCom OAuth is not asked: who
// holds the link within its TTL can download it, which is why the link goes
// only to the user in the chat (see docs/connectors/fileshare.md).
type LinkServer struct {
	mu   sync.RWMutex
	byID map[string]*Connector
}

// Links is the process's LinkServer; the hub mounts it at LinkPath.
var Links = &LinkServer{byID: map[string]*Connector{}}

func (l *LinkServer) register(name string, c *Connector) {
	l.mu.Lock()
	l.byID[name] = c
	l.mu.Unlock()
}

// ServeHTTP implements http.Handler for GET and HEAD /files/{token}.
func (l *LinkServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	tok := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	cl, payload, mac, err := parseToken(tok)
	notFound := func() { http.Error(w, "链接无效或已过期", http.StatusNotFound) }
	if err != nil {
		notFound()
		return
	}
	l.mu.RLock()
	c := l.byID[cl.Instance]
	l.mu.RUnlock()
	if c == nil {
		notFound()
		return
	}
	m := hmac.New(sha256.New, c.secret)
	m.Write([]byte(payload))
	if !hmac.Equal(mac, m.Sum(nil)) || c.now().Unix() >= cl.Expires {
		notFound()
		return
	}
	allowed, err := c.allowed(r.Context(), cl.Corp, cl.User)
	if err != nil {
		http.Error(w, "目录服务暂不可用，请稍后再试", http.StatusServiceUnavailable)
		return
	}
	e, ok := c.index.Get(cl.Source, cl.Path)
	if !ok || !allowed[cl.Source] {
		notFound()
		return
	}
	f, err := c.sources[cl.Source].open(r.Context(), cl.Path)
	if errors.Is(err, fs.ErrNotExist) {
		notFound()
		return
	}
	if err != nil {
		http.Error(w, "文件暂时无法读取，请稍后再试", http.StatusBadGateway)
		return
	}
	defer f.Close()
	c.log.Info("fileshare delivery", zap.String("user", cl.User), zap.String("source", e.Source), zap.String("path", e.Path),
		zap.Int64("size", e.Size), zap.String("via", "link download"), zap.Time("at", c.now()), zap.String("remote", r.RemoteAddr))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": e.Name()}))
	w.Header().Set("Cache-Control", "private, no-store")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = io.Copy(w, f) // the file may have changed size since it was indexed: no Content-Length
}
