package fileshare

import (
	"cmp"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/mozillazg/go-pinyin"
)

// Entry is one file of a source.
type Entry struct {
	Source  string    `json:"source"`
	Path    string    `json:"path"` // relative to the source's root, '/'-separated, no leading '/'
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	ETag    string    `json:"etag,omitempty"` // WebDAV only
}

// Name is the file's base name.
func (e Entry) Name() string { return path.Base(e.Path) }

// indexed is an entry with its search keys, computed once.
type indexed struct {
	Entry
	name, stem, dir string     // lower-cased
	py, ini         string     // pinyin of the name: full and initials (other characters kept)
	readings        [][]string // per letter, digit or Han character of the stem: its readings
	mask            mask128    // every rune of name and dir, for a quick reject
	pyMask          mask128    // every letter of every reading
}

// mask128 is a one-hash Bloom filter of runes in 128 bits (with 64, a name
// and path of ~20 distinct characters let a third of the entries through a
// two-character term by chance).
type mask128 [2]uint64

func (m mask128) has(o mask128) bool { return m[0]&o[0] == o[0] && m[1]&o[1] == o[1] }

func runeMask(s string) mask128 {
	var m mask128
	for _, r := range s {
		h := uint32(r) * 2654435761 >> 25 // 0..127
		m[h>>6] |= 1 << (h & 63)
	}
	return m
}

func (m mask128) or(o mask128) mask128 { return mask128{m[0] | o[0], m[1] | o[1]} }

// Index holds every file of every source, searchable by name and path. Safe
// for concurrent use.
type Index struct {
	mu      sync.RWMutex
	entries map[string]*indexed // by key(source, path)
	list    []*indexed          // the entries, rebuilt lazily for scans
	slots   []slot              // list's masks, contiguous: a scan rejects most entries without a pointer load
	dirty   bool
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{entries: map[string]*indexed{}}
}

func key(source, p string) string { return source + "\x00" + p }

// Put adds or replaces an entry.
func (x *Index) Put(e Entry) {
	ie := newIndexed(e)
	x.mu.Lock()
	x.entries[key(e.Source, e.Path)] = ie
	x.list, x.slots, x.dirty = nil, nil, true
	x.mu.Unlock()
}

// Remove drops a file, or every file under a directory path.
func (x *Index) Remove(source, p string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.entries[key(source, p)]; ok {
		delete(x.entries, key(source, p))
	} else {
		prefix := key(source, strings.TrimSuffix(p, "/")+"/")
		for k := range x.entries {
			if strings.HasPrefix(k, prefix) {
				delete(x.entries, k)
			}
		}
	}
	x.list, x.slots, x.dirty = nil, nil, true
}

// RemoveSource drops every file of a source.
func (x *Index) RemoveSource(source string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for k, e := range x.entries {
		if e.Source == source {
			delete(x.entries, k)
		}
	}
	x.list, x.slots, x.dirty = nil, nil, true
}

func (x *Index) sourceNames() map[string]bool {
	out := map[string]bool{}
	for _, e := range x.snapshot() {
		out[e.Source] = true
	}
	return out
}

// Get returns the entry of a file.
func (x *Index) Get(source, p string) (Entry, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.entries[key(source, p)]
	if !ok {
		return Entry{}, false
	}
	return e.Entry, true
}

// Source returns the entries of one source.
func (x *Index) Source(source string) []Entry {
	var out []Entry
	for _, e := range x.snapshot() {
		if e.Source == source {
			out = append(out, e.Entry)
		}
	}
	return out
}

// Len is the number of files.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.entries)
}

// slot is the part of an entry a scan reads first.
type slot struct{ mask, pyMask mask128 }

func (x *Index) snapshot() []*indexed {
	l, _ := x.scanList()
	return l
}

func (x *Index) scanList() ([]*indexed, []slot) {
	x.mu.RLock()
	l, sl := x.list, x.slots
	x.mu.RUnlock()
	if l != nil {
		return l, sl
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.list == nil {
		x.list = make([]*indexed, 0, len(x.entries))
		x.slots = make([]slot, 0, len(x.entries))
		for _, e := range x.entries {
			x.list = append(x.list, e)
			x.slots = append(x.slots, slot{e.mask, e.pyMask})
		}
	}
	return x.list, x.slots
}

func newIndexed(e Entry) *indexed {
	name := strings.ToLower(e.Name())
	stem := strings.TrimSuffix(name, path.Ext(name))
	py, ini, readings := pinyinKeys(stem)
	dir := strings.ToLower(path.Dir(e.Path))
	return &indexed{Entry: e, name: name, stem: stem, dir: dir, py: py, ini: ini, readings: readings,
		mask: runeMask(name).or(runeMask(dir)), pyMask: readingsMask(readings)}
}

func readingsMask(readings [][]string) mask128 {
	var m mask128
	for _, rs := range readings {
		for _, r := range rs {
			m = m.or(runeMask(r))
		}
	}
	return m
}

// readingCache memoizes go-pinyin's per-character lookup (it formats every
// reading anew on each call; names repeat a few thousand characters).
var readingCache sync.Map // rune -> []string

func readingsOf(r rune) []string {
	if v, ok := readingCache.Load(r); ok {
		return v.([]string)
	}
	p := pinyin.SinglePinyin(r, pinyinArgs)
	p = slices.DeleteFunc(slices.Compact(p), func(s string) bool { return s == "" })
	readingCache.Store(r, p)
	return p
}

var pinyinArgs = func() pinyin.Args { a := pinyin.NewArgs(); a.Heteronym = true; return a }()

// pinyinKeys spells s in pinyin, full and by initials (销售周报 -> xiaoshouzhoubao,
// xszb), with the most common reading of each character; letters and digits
// are kept, other characters dropped. readings lists every reading of each
// kept character, for matching a polyphone's other reading (模板: muban).
func pinyinKeys(s string) (full, initials string, readings [][]string) {
	var f, i strings.Builder
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Han, r):
			p := readingsOf(r)
			if len(p) == 0 {
				continue
			}
			f.WriteString(p[0])
			i.WriteByte(p[0][0])
			readings = append(readings, p)
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			f.WriteRune(r)
			i.WriteRune(r)
			readings = append(readings, []string{string(r)})
		}
	}
	return f.String(), i.String(), readings
}

// spells returns the first character from which q spells the readings in
// full pinyin (the last syllable may be cut short: "hetongmub"), or -1.
func spells(readings [][]string, q string) int {
	for start := range readings {
		if spellsFrom(readings[start:], q) {
			return start
		}
	}
	return -1
}

func spellsFrom(readings [][]string, q string) bool {
	if q == "" {
		return true
	}
	if len(readings) == 0 {
		return false
	}
	for _, r := range readings[0] {
		if strings.HasPrefix(q, r) && spellsFrom(readings[1:], q[len(r):]) {
			return true
		}
		if len(q) < len(r) && strings.HasPrefix(r, q) {
			return true
		}
	}
	return false
}

// Hit is one search result.
type Hit struct {
	Entry
	Score int
}

// Match quality, best first.
const (
	scoreExact     = 100 // the name (without extension) is the query
	scorePrefix    = 90  // the name starts with the query
	scoreName      = 80  // the name contains the query
	scorePinyin    = 70  // the name's pinyin (full or initials) starts with the query
	scorePath      = 50  // a directory of the path contains the query
	scorePinyinSub = 45  // the name's pinyin contains the query
	scoreFuzzy     = 40  // most of the query's character pairs are in the name (plus up to 9)
)

// Search finds the files whose name or path match every term of the query,
// best match first, then newest first. allowed filters sources (nil: all).
// limit <= 0: every hit.
func (x *Index) Search(query string, allowed func(source string) bool, limit int) []Hit {
	terms := Terms(query)
	if len(terms) == 0 {
		return nil
	}
	var hits []Hit
	list, slots := x.scanList()
next:
	for i, sl := range slots {
		for _, t := range terms {
			if !t.could(sl) {
				continue next
			}
		}
		e := list[i]
		if allowed != nil && !allowed(e.Source) {
			continue
		}
		total := 0
		for _, t := range terms {
			s := t.score(e)
			if s == 0 {
				total = 0
				break
			}
			total += s
		}
		if total > 0 {
			hits = append(hits, Hit{Entry: e.Entry, Score: total / len(terms)})
		}
	}
	slices.SortFunc(hits, func(a, b Hit) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		if c := b.ModTime.Compare(a.ModTime); c != 0 {
			return c
		}
		return cmp.Compare(a.Source+a.Path, b.Source+b.Path)
	})
	if limit > 0 && len(hits) > limit {
		hits = hits[:limit]
	}
	return hits
}

// term is one word of a query with its search forms.
type term struct {
	text   string    // lower-cased
	mask   mask128   // runeMask(text)
	ascii  bool      // letters and digits only: also matched against pinyin
	grams  []string  // CJK character pairs, for the fuzzy match
	gmasks []mask128 // runeMask of each gram
	letter bool      // all letters (pinyin candidates)
}

// could reports whether an entry with these masks may match t at all.
func (t term) could(sl slot) bool {
	if sl.mask.has(t.mask) || (t.letter && sl.pyMask.has(t.mask)) {
		return true
	}
	if len(t.grams) < 2 {
		return false
	}
	n := 0
	for _, g := range t.gmasks {
		if sl.mask.has(g) {
			n++
		}
	}
	return 2*n >= len(t.grams)+1
}

func (t term) score(e *indexed) int {
	if !e.mask.has(t.mask) { // some rune of the term is in neither name nor path
		return t.pinyinOrFuzzy(e)
	}
	switch {
	case e.stem == t.text || e.name == t.text:
		return scoreExact
	case strings.HasPrefix(e.stem, t.text):
		return scorePrefix
	case strings.Contains(e.name, t.text):
		return scoreName
	}
	if strings.Contains(e.dir, t.text) {
		return scorePath
	}
	return t.pinyinOrFuzzy(e)
}

func (t term) pinyinOrFuzzy(e *indexed) int {
	if t.letter && e.pyMask.has(t.mask) {
		switch {
		case strings.HasPrefix(e.ini, t.text), strings.HasPrefix(e.py, t.text):
			return scorePinyin
		case len(t.text) >= 2 && (strings.Contains(e.ini, t.text) || strings.Contains(e.py, t.text)):
			return scorePinyinSub
		}
		if len(t.text) >= 4 {
			switch spells(e.readings, t.text) {
			case -1:
			case 0:
				return scorePinyin
			default:
				return scorePinyinSub
			}
		}
	}
	if len(t.grams) >= 2 {
		n := 0
		for i, g := range t.grams {
			if e.mask.has(t.gmasks[i]) && strings.Contains(e.name, g) {
				n++
			}
		}
		if 2*n >= len(t.grams)+1 { // more than half
			return scoreFuzzy + 9*n/len(t.grams)
		}
	}
	return 0
}

// fillers are words of a spoken or typed request that name no file.
var fillers = []string{"帮我", "请", "给我", "发我", "发一下", "一下", "找一下", "查一下", "那个", "这个", "文件", "的"}

// Terms splits a query into search terms: at spaces and punctuation, without
// command words and fillers ("帮我找一下上周的销售周报" -> 销售周报, and
// the recency word 上周 apart, see Recency).
func Terms(query string) []term {
	q := strings.ToLower(strings.TrimSpace(query))
	q, _ = cutRecency(stripCommand(q))
	for _, f := range fillers {
		q = strings.ReplaceAll(q, f, " ")
	}
	var out []term
	for _, w := range strings.FieldsFunc(q, func(r rune) bool {
		return unicode.IsSpace(r) || (unicode.IsPunct(r) && r != '.' && r != '-' && r != '_') || unicode.IsSymbol(r)
	}) {
		t := term{text: w, ascii: true, letter: true, mask: runeMask(w)}
		var run []rune
		for _, r := range w {
			if r > unicode.MaxASCII {
				t.ascii = false
			}
			if !unicode.IsLetter(r) || r > unicode.MaxASCII {
				t.letter = false
			}
			if unicode.Is(unicode.Han, r) {
				run = append(run, r)
				continue
			}
			t.grams = append(t.grams, bigrams(run)...)
			run = run[:0]
		}
		t.grams = append(t.grams, bigrams(run)...)
		for _, g := range t.grams {
			t.gmasks = append(t.gmasks, runeMask(g))
		}
		out = append(out, t)
	}
	return out
}

func bigrams(run []rune) []string {
	var out []string
	for i := 0; i+1 < len(run); i++ {
		out = append(out, string(run[i:i+2]))
	}
	return out
}

// commands are the words that start a search request.
var commands = []string{"查找", "搜索", "找", "查", "文件", "file", "find"}

func stripCommand(q string) string {
	for _, c := range commands {
		if rest, ok := strings.CutPrefix(q, c); ok && rest != "" {
			return strings.TrimSpace(rest)
		}
	}
	return q
}

// Recency words narrow a query to files modified in a period.
type Recency int

const (
	RecencyAny      Recency = iota
	RecencyLastWeek         // 上周
	RecencyThisWeek         // 本周, 这周
	RecencyNewest           // 最新, 最近
)

var recencyWords = []struct {
	word string
	r    Recency
}{{"上周", RecencyLastWeek}, {"上星期", RecencyLastWeek}, {"本周", RecencyThisWeek}, {"这周", RecencyThisWeek}, {"最新", RecencyNewest}, {"最近", RecencyNewest}}

func cutRecency(q string) (string, Recency) {
	for _, w := range recencyWords {
		if strings.Contains(q, w.word) {
			return strings.Replace(q, w.word, " ", 1), w.r
		}
	}
	return q, RecencyAny
}

// ParseRecency returns the query's recency word, if any.
func ParseRecency(query string) Recency {
	_, r := cutRecency(strings.ToLower(query))
	return r
}

// weekStart is the Monday 00:00 of t's week, in t's location.
func weekStart(t time.Time) time.Time {
	d := (int(t.Weekday()) + 6) % 7
	y, m, day := t.Date()
	return time.Date(y, m, day-d, 0, 0, 0, 0, t.Location())
}

// Within reports whether t falls in the period r names, seen at now.
func (r Recency) Within(t, now time.Time) bool {
	this := weekStart(now)
	switch r {
	case RecencyLastWeek:
		return !t.Before(this.AddDate(0, 0, -7)) && t.Before(this)
	case RecencyThisWeek:
		return !t.Before(this)
	}
	return true
}

// snapshotFile is the index on disk.
type snapshotFile struct {
	Version int       `json:"version"`
	Saved   time.Time `json:"saved"`
	Entries []Entry   `json:"entries"`
}

// Save writes the index to file atomically (gzip JSON) when it changed since
// the last Save or Load.
func (x *Index) Save(file string, now time.Time) error {
	x.mu.Lock()
	if !x.dirty {
		x.mu.Unlock()
		return nil
	}
	snap := snapshotFile{Version: 1, Saved: now, Entries: make([]Entry, 0, len(x.entries))}
	for _, e := range x.entries {
		snap.Entries = append(snap.Entries, e.Entry)
	}
	x.dirty = false
	x.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("fileshare: index: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".index-*")
	if err != nil {
		return fmt.Errorf("fileshare: index: %w", err)
	}
	defer os.Remove(tmp.Name())
	zw := gzip.NewWriter(tmp)
	err = json.NewEncoder(zw).Encode(snap)
	err = firstErr(err, zw.Close(), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), file)
	}
	if err != nil {
		x.mu.Lock()
		x.dirty = true
		x.mu.Unlock()
		return fmt.Errorf("fileshare: save index %s: %w", file, err)
	}
	return nil
}

// Load reads an index saved by Save; a missing file is an empty index.
func Load(file string) (*Index, error) {
	x := NewIndex()
	f, err := os.Open(file)
	if os.IsNotExist(err) {
		return x, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fileshare: load index: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("fileshare: load index %s: %w", file, err)
	}
	var snap snapshotFile
	if err := json.NewDecoder(zr).Decode(&snap); err != nil {
		return nil, fmt.Errorf("fileshare: load index %s: %w", file, err)
	}
	for _, e := range snap.Entries {
		x.entries[key(e.Source, e.Path)] = newIndexed(e)
	}
	return x, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
