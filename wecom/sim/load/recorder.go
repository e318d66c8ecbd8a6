package load

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Recorder wraps the simulator's handler and notes when each reply to a
// generated message reached "WeCom": a message/send answered with errcode 0
// whose text carries Marker and a sequence number (the echo connector answers
// "echo: <content>"). It reads the request as it passes, so the simulator needs
// no hook and its own records stay as they are.
type Recorder struct {
	next   http.Handler
	marker string
	clock  func() time.Time

	mu      sync.Mutex
	seen    map[int64]time.Time
	dups    int
	changed chan struct{}
}

// NewRecorder wraps next (the simulator). marker as in Config.Marker ("" = DefaultMarker).
func NewRecorder(next http.Handler, marker string) *Recorder {
	if marker == "" {
		marker = DefaultMarker
	}
	return &Recorder{next: next, marker: marker, clock: time.Now, seen: map[int64]time.Time{}, changed: make(chan struct{})}
}

// captureWriter keeps the status and the start of the body of an answer.
type captureWriter struct {
	http.ResponseWriter
	status int
	head   []byte
}

func (w *captureWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *captureWriter) Write(b []byte) (int, error) {
	if len(w.head) < 64 {
		n := min(64-len(w.head), len(b))
		w.head = append(w.head, b[:n]...)
	}
	return w.ResponseWriter.Write(b)
}

// ServeHTTP passes every request on; message/send bodies are read first.
func (rec *Recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/cgi-bin/message/send" {
		rec.next.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	cw := &captureWriter{ResponseWriter: w, status: http.StatusOK}
	rec.next.ServeHTTP(cw, r)
	at := rec.clock()
	if cw.status != http.StatusOK || !errcodeZero(cw.head) {
		return
	}
	seq, ok := rec.parse(body)
	if !ok {
		return
	}
	rec.mu.Lock()
	if _, dup := rec.seen[seq]; dup {
		rec.dups++
	} else {
		rec.seen[seq] = at
	}
	close(rec.changed)
	rec.changed = make(chan struct{})
	rec.mu.Unlock()
}

func errcodeZero(head []byte) bool {
	var v struct {
		Errcode *int `json:"errcode"`
	}
	// The head may be cut; look for the field textually first.
	i := bytes.Index(head, []byte(`"errcode":`))
	if i < 0 {
		return json.Unmarshal(head, &v) == nil && v.Errcode != nil && *v.Errcode == 0
	}
	rest := bytes.TrimLeft(head[i+len(`"errcode":`):], " ")
	return len(rest) > 1 && rest[0] == '0' && (rest[1] == ',' || rest[1] == '}' || rest[1] == ' ')
}

func (rec *Recorder) parse(body []byte) (int64, bool) {
	var m struct {
		MsgType string `json:"msgtype"`
		Text    struct {
			Content string `json:"content"`
		} `json:"text"`
	}
	if json.Unmarshal(body, &m) != nil || m.MsgType != "text" {
		return 0, false
	}
	return ParseMarker(m.Text.Content, rec.marker)
}

// ParseMarker finds marker followed by digits in s and returns the number.
func ParseMarker(s, marker string) (int64, bool) {
	i := strings.LastIndex(s, marker)
	if i < 0 {
		return 0, false
	}
	digits := s[i+len(marker):]
	end := 0
	for end < len(digits) && digits[end] >= '0' && digits[end] <= '9' {
		end++
	}
	if end == 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(digits[:end], 10, 64)
	return n, err == nil
}

// Count is the number of distinct sequence numbers seen.
func (rec *Recorder) Count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.seen)
}

// Duplicates counts replies seen more than once (a sequence number delivered twice).
func (rec *Recorder) Duplicates() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.dups
}

// Seen answers when the reply to seq was accepted by the simulator.
func (rec *Recorder) Seen(seq int64) (time.Time, bool) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	t, ok := rec.seen[seq]
	return t, ok
}

// Reset forgets every reply seen.
func (rec *Recorder) Reset() {
	rec.mu.Lock()
	rec.seen = map[int64]time.Time{}
	rec.dups = 0
	rec.mu.Unlock()
}

// WaitCount blocks until at least n distinct replies were seen, or ctx ends
// (then it returns the count so far and ctx's error).
func (rec *Recorder) WaitCount(ctx context.Context, n int) (int, error) {
	for {
		rec.mu.Lock()
		got, ch := len(rec.seen), rec.changed
		rec.mu.Unlock()
		if got >= n {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case <-ch:
		}
	}
}

// EndToEnd matches the replies the recorder saw with the requests of res (by
// sequence number) and returns their latencies, from each request's due time
// to its reply's acceptance, and how many answered requests got no reply.
func (rec *Recorder) EndToEnd(reqs []Request, res *Result) (lat *Latencies, missing int) {
	lat = NewLatencies(res.OK)
	missing = rec.EachReply(reqs, res, func(_ int64, _ time.Time, latency time.Duration) {
		lat.s = append(lat.s, latency)
	})
	return lat, missing
}

// EachReply calls fn, in request order, with the sequence number, due time and end-to-end
// latency of every answered text request whose reply was seen, and returns how
// many answered requests got no reply. A timeline of the latencies shows what
// percentiles hide: whether the slow replies come in clusters (stalls) or are
// spread out (queueing).
func (rec *Recorder) EachReply(reqs []Request, res *Result, fn func(seq int64, due time.Time, latency time.Duration)) (missing int) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i, r := range reqs {
		if i >= len(res.Answered) || !res.Answered[i] || r.Kind != KindText {
			continue
		}
		t, ok := rec.seen[r.Seq]
		if !ok {
			missing++
			continue
		}
		fn(r.Seq, res.Schedule[i], t.Sub(res.Schedule[i]))
	}
	return missing
}
