package load

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom"
)

// Kind is a kind of member message the generator plays.
type Kind string

// The kinds of the mix.
const (
	KindText     Kind = "text"
	KindEvent    Kind = "event"    // a menu click
	KindImage    Kind = "image"    // a picture
	KindLocation Kind = "location" // a location message
)

var kinds = []Kind{KindText, KindEvent, KindImage, KindLocation}

// Mix weights the kinds; Prepare deals them out in that proportion, evenly
// spread over the run (not in blocks).
type Mix map[Kind]int

// DefaultMix is the mix `wxhub-bench load` plays when given none: mostly text.
var DefaultMix = Mix{KindText: 70, KindEvent: 10, KindImage: 10, KindLocation: 10}

// ParseMix reads "text=70,event=10,image=10,location=10".
func ParseMix(s string) (Mix, error) {
	m := Mix{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%w: mix %q: want kind=weight", ErrConfig, part)
		}
		if !validKind(Kind(k)) {
			return nil, fmt.Errorf("%w: mix: unknown kind %q (text, event, image, location)", ErrConfig, k)
		}
		w, err := strconv.Atoi(v)
		if err != nil || w < 0 {
			return nil, fmt.Errorf("%w: mix %q: weight must be a whole number >= 0", ErrConfig, part)
		}
		m[Kind(k)] = w
	}
	if m.total() == 0 {
		return nil, fmt.Errorf("%w: mix %q: no kind has a weight", ErrConfig, s)
	}
	return m, nil
}

func validKind(k Kind) bool {
	for _, x := range kinds {
		if x == k {
			return true
		}
	}
	return false
}

func (m Mix) total() int {
	t := 0
	for _, k := range kinds {
		t += m[k]
	}
	return t
}

// String is the mix in ParseMix's form, kinds in a fixed order.
func (m Mix) String() string {
	var parts []string
	for _, k := range kinds {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
		}
	}
	return strings.Join(parts, ",")
}

// picker deals kinds in proportion with a smooth weighted round robin, so a
// short run has the same mix as a long one.
type picker struct {
	ks      []Kind
	weights []int
	current []int
	total   int
}

func newPicker(m Mix) *picker {
	p := &picker{}
	for _, k := range kinds {
		if w := m[k]; w > 0 {
			p.ks = append(p.ks, k)
			p.weights = append(p.weights, w)
			p.total += w
		}
	}
	p.current = make([]int, len(p.ks))
	return p
}

func (p *picker) next() Kind {
	best := 0
	for i := range p.ks {
		p.current[i] += p.weights[i]
		if p.current[i] > p.current[best] {
			best = i
		}
	}
	p.current[best] -= p.total
	return p.ks[best]
}

// Request is one prepared callback: signed and encrypted ahead of the run so the
// generator spends its time sending, not encrypting.
type Request struct {
	Seq  int64  // 0, 1, 2, ... in the order they are sent
	Kind Kind   //
	User string // FromUserName
	// Query is the callback's query string: msg_signature, timestamp, nonce.
	Query string
	Body  []byte
}

// Prepare builds n requests for cfg: users taken round robin, kinds dealt by
// cfg.Mix, text content "<TextPrefix><Marker><seq>" so that a reply can be
// matched to its request (see Recorder). Timestamps are now: the gateway
// rejects callbacks older than its timestamp window (default 5 min), so run them
// within that.
func Prepare(cfg Config, n int) ([]Request, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validateTarget(); err != nil {
		return nil, err
	}
	if len(cfg.Users) == 0 {
		return nil, fmt.Errorf("%w: users: none", ErrConfig)
	}
	if n <= 0 {
		return nil, fmt.Errorf("%w: count: %d requests", ErrConfig, n)
	}
	c, err := wecom.NewCrypter(cfg.Target.Token, cfg.Target.EncodingAESKey, cfg.Target.CorpID)
	if err != nil {
		return nil, fmt.Errorf("%w: target: %w", ErrConfig, err)
	}
	// MsgIds are 64-bit in WeChat; a random base keeps two runs against the same
	// hub from being merged by its dedup window.
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("load: random: %w", err)
	}
	msgBase := int64(binary.BigEndian.Uint64(b[:])>>2) + 1<<60
	start := time.Now().Unix()
	agent := strconv.FormatInt(cfg.Target.AgentID, 10)
	pick := newPicker(cfg.Mix)
	reqs := make([]Request, n)
	for i := range reqs {
		seq := int64(i)
		// Signed for the second it is due, as WeChat signs at sending time: a run
		// longer than the gateway's timestamp window (5 min) must not turn stale.
		now := start
		if cfg.Rate > 0 {
			now += int64(float64(i) / cfg.Rate)
		}
		ts := strconv.FormatInt(now, 10)
		user := cfg.Users[i%len(cfg.Users)]
		kind := pick.next()
		d := schemas.EventData{ToUser: cfg.Target.CorpID, User: user, AgentID: cfg.Target.AgentID,
			CreateTime: now, MsgType: string(kind), MsgID: strconv.FormatInt(msgBase+seq, 10)}
		switch kind {
		case KindText:
			d.Content = cfg.TextPrefix + cfg.Marker + strconv.FormatInt(seq, 10)
		case KindEvent:
			// Events carry no MsgId; the hub dedups them by a hash of the XML, so
			// the key differs per request to keep them distinct.
			d.MsgID, d.Event, d.EventKey = "", "click", "LOAD_"+strconv.FormatInt(seq, 10)
		case KindImage:
			d.PicURL = "http://127.0.0.1/load/" + strconv.FormatInt(seq, 10) + ".jpg"
			d.MediaID = "load-media-" + strconv.FormatInt(seq, 10)
		case KindLocation:
			d.LocationX, d.LocationY, d.Scale, d.Label = 31.2304, 121.4737+float64(i%1000)/1e5, 15, "上海"
		}
		plain, err := wecom.BuildInbound(d)
		if err != nil {
			return nil, fmt.Errorf("load: build %s #%d: %w", kind, seq, err)
		}
		nonce := strconv.FormatInt(seq+1_000_000_000, 10)
		body, sig, err := c.EncryptCallbackAgent(plain, ts, nonce, agent)
		if err != nil {
			return nil, fmt.Errorf("load: encrypt #%d: %w", seq, err)
		}
		q := url.Values{"msg_signature": {sig}, "timestamp": {ts}, "nonce": {nonce}}
		reqs[i] = Request{Seq: seq, Kind: kind, User: user, Query: q.Encode(), Body: body}
	}
	return reqs, nil
}

// CountKinds tallies requests by kind (for reports).
func CountKinds(reqs []Request) map[Kind]int {
	m := map[Kind]int{}
	for _, r := range reqs {
		m[r.Kind]++
	}
	return m
}

// Users makes n userids prefix0001, prefix0002, ... (the width grows with n):
// the members a generated simulator config lists.
func Users(prefix string, n int) []string {
	width := len(strconv.Itoa(n))
	if width < 4 {
		width = 4
	}
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%0*d", prefix, width, i+1)
	}
	return out
}

// sortedKinds lists the keys of m in a fixed order (reports).
func sortedKinds(m map[Kind]int) []Kind {
	out := make([]Kind, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
