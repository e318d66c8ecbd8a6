package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
)

// DLQItem is one dead letter in the list (no body).
type DLQItem struct {
	Seq      uint64    `json:"seq"`
	ID       string    `json:"id"`
	Stage    string    `json:"stage"`
	Reason   string    `json:"reason"`
	Attempts int       `json:"attempts"`
	Subject  string    `json:"subject"` // where a replay goes
	Stored   time.Time `json:"stored"`
	Hint     string    `json:"hint,omitempty"`
}

// DLQDetail is one dead letter with its original message.
type DLQDetail struct {
	DLQItem
	Headers  map[string]string `json:"headers,omitempty"`
	Encoding string            `json:"encoding,omitempty"` // "base64" when the original is not UTF-8 text
	Original string            `json:"original"`           // indented JSON, plain text, or base64
}

type dlqPage struct {
	Items []DLQItem `json:"items"`
	Total uint64    `json:"total"`
	Next  uint64    `json:"next,omitempty"` // pass as after= for the next page
}

func dlqItem(e bus.DLQEntry) DLQItem {
	l := e.Letter.Data
	return DLQItem{Seq: e.Seq, ID: e.Letter.ID, Stage: l.Stage, Reason: truncate(l.Reason, 500),
		Attempts: l.Attempts, Subject: l.Subject, Stored: e.Stored, Hint: hintFor(l.Reason)}
}

// dlqList: GET /dashboard/api/dlq?stage=&after=&limit= (oldest first, paged).
func (d *Dashboard) dlqList(w http.ResponseWriter, r *http.Request, _ session) {
	q := r.URL.Query()
	f := bus.DLQFilter{Stage: q.Get("stage"), Limit: 100}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "after: not a sequence number")
			return
		}
		f.After = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "limit: want 1..1000")
			return
		}
		f.Limit = n
	}
	es, err := d.bus.ListDLQ(r.Context(), f)
	if err != nil && len(es) == 0 {
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	page := dlqPage{Items: make([]DLQItem, 0, len(es))}
	for _, e := range es {
		page.Items = append(page.Items, dlqItem(e))
	}
	if len(es) == f.Limit {
		page.Next = es[len(es)-1].Seq
	}
	if st, err := readDLQTotal(r, d.bus); err == nil {
		page.Total = st
	}
	writeJSON(w, http.StatusOK, page)
}

func readDLQTotal(r *http.Request, b *bus.Bus) (uint64, error) {
	s, err := b.JS().Stream(r.Context(), bus.StreamDLQ)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(r.Context())
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

func parseSeq(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		writeError(w, http.StatusBadRequest, "seq: not a sequence number")
		return 0, false
	}
	return seq, true
}

func dlqFail(w http.ResponseWriter, err error) {
	if errors.Is(err, bus.ErrDLQNotFound) {
		writeError(w, http.StatusNotFound, "dead letter not found (replayed, dropped or expired)")
		return
	}
	writeError(w, http.StatusBadGateway, err.Error())
}

// dlqGet: GET /dashboard/api/dlq/{seq}.
func (d *Dashboard) dlqGet(w http.ResponseWriter, r *http.Request, _ session) {
	seq, ok := parseSeq(w, r)
	if !ok {
		return
	}
	e, err := d.bus.GetDLQ(r.Context(), seq)
	if err != nil {
		dlqFail(w, err)
		return
	}
	det := DLQDetail{DLQItem: dlqItem(e), Headers: e.Letter.Data.Headers}
	det.Reason = e.Letter.Data.Reason
	body, err := bus.OriginalBytes(e.Letter.Data)
	switch {
	case err != nil:
		det.Encoding, det.Original = "base64", string(e.Letter.Data.Original)
	case json.Valid(body):
		var buf bytes.Buffer
		if json.Indent(&buf, body, "", "  ") == nil {
			det.Original = buf.String()
		} else {
			det.Original = string(body)
		}
	case utf8.Valid(body):
		det.Original = string(body)
	default:
		det.Encoding, det.Original = "base64", string(e.Letter.Data.Original)
	}
	writeJSON(w, http.StatusOK, det)
}

// dlqReplay: POST /dashboard/api/dlq/{seq}/replay (admin): the original goes
// back to its subject and the dead letter is deleted.
func (d *Dashboard) dlqReplay(w http.ResponseWriter, r *http.Request, s session) {
	seq, ok := parseSeq(w, r)
	if !ok {
		return
	}
	e, err := d.bus.GetDLQ(r.Context(), seq)
	if err != nil {
		dlqFail(w, err)
		return
	}
	if err := d.bus.ReplayDLQ(r.Context(), seq); err != nil {
		dlqFail(w, err)
		return
	}
	d.log.Info("dead letter replayed", zap.String("user", s.User), zap.Uint64("seq", seq),
		zap.String("stage", e.Letter.Data.Stage), zap.String("subject", e.Letter.Data.Subject))
	d.invalidate()
	writeJSON(w, http.StatusOK, map[string]any{"replayed": seq, "subject": e.Letter.Data.Subject})
}

// dlqDrop: POST /dashboard/api/dlq/{seq}/drop (admin).
func (d *Dashboard) dlqDrop(w http.ResponseWriter, r *http.Request, s session) {
	seq, ok := parseSeq(w, r)
	if !ok {
		return
	}
	if _, err := d.bus.GetDLQ(r.Context(), seq); err != nil {
		dlqFail(w, err)
		return
	}
	if err := d.bus.DropDLQ(r.Context(), seq); err != nil {
		dlqFail(w, err)
		return
	}
	d.log.Info("dead letter dropped", zap.String("user", s.User), zap.Uint64("seq", seq))
	d.invalidate()
	writeJSON(w, http.StatusOK, map[string]any{"dropped": seq})
}

// invalidate makes the next snapshot fresh, so the page shows an action's effect at once.
func (d *Dashboard) invalidate() {
	d.snapMu.Lock()
	d.snap = nil
	d.snapMu.Unlock()
}

func (d *Dashboard) index(w http.ResponseWriter, r *http.Request, _ session) {
	d.serveFile(w, r, "index.html")
}

func (d *Dashboard) asset(w http.ResponseWriter, r *http.Request, _ session) {
	d.serveFile(w, r, r.PathValue("file"))
}

func (d *Dashboard) loginCSS(w http.ResponseWriter, r *http.Request) {
	d.serveFile(w, r, "login.css")
}

func (d *Dashboard) loginJS(w http.ResponseWriter, r *http.Request) {
	d.serveFile(w, r, "login.js")
}

func (d *Dashboard) serveFile(w http.ResponseWriter, r *http.Request, name string) {
	name = path.Clean("/" + name)[1:]
	data, err := fs.ReadFile(d.static, name)
	if err != nil || name == "login.html" {
		http.NotFound(w, r)
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	_, _ = w.Write(data)
}
