package load

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxhub/wxhub/wecom"
)

const (
	testToken  = "QDG6eK"
	testAESKey = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
	testCorp   = "ww0123456789abcdef"
)

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		name    string
		given   string
		wantErr bool
	}{
		{"ipv4 loopback", "http://127.0.0.1:8080", false},
		{"other 127/8", "http://127.3.2.1:80/x", false},
		{"localhost", "http://localhost:8080", false},
		{"ipv6 loopback", "http://[::1]:8080", false},
		{"https", "https://127.0.0.1", false},
		{"private range", "http://10.0.0.1:8080", true},
		{"public", "http://93.184.216.34", true},
		{"a name", "http://example.com", true},
		{"name resolving to loopback is still refused", "http://localtest.me", true},
		{"unspecified", "http://0.0.0.0:8080", true},
		{"other scheme", "ftp://127.0.0.1", true},
		{"no scheme", "127.0.0.1:8080", true},
		{"garbage", "http://%zz", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckLoopback(tt.given)
			if (err != nil) != tt.wantErr {
				t.Fatalf("CheckLoopback(%q) = %v, wantErr %v", tt.given, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrNotLoopback) {
				t.Fatalf("error %v does not wrap ErrNotLoopback", err)
			}
		})
	}
}

func TestParseMix(t *testing.T) {
	tests := []struct {
		name    string
		given   string
		want    string
		wantErr bool
	}{
		{"full", "text=70,event=10,image=10,location=10", "text=70,event=10,image=10,location=10", false},
		{"text only", "text=1", "text=1", false},
		{"spaces", " text=3 , image=1 ", "text=3,image=1", false},
		{"unknown kind", "voice=1", "", true},
		{"no weight", "text", "", true},
		{"negative", "text=-1", "", true},
		{"all zero", "text=0", "", true},
		{"empty", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMix(tt.given)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrConfig) {
					t.Fatalf("%v does not wrap ErrConfig", err)
				}
				return
			}
			if m.String() != tt.want {
				t.Fatalf("got %s, want %s", m, tt.want)
			}
		})
	}
}

func TestParseMarker(t *testing.T) {
	tests := []struct {
		name   string
		given  string
		want   int64
		wantOK bool
	}{
		{"echo reply", "echo: echo lg#42", 42, true},
		{"trailing text", "lg#7 ok", 7, true},
		{"last marker wins", "lg#1 lg#2", 2, true},
		{"no digits", "lg#x", 0, false},
		{"no marker", "hello", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseMarker(tt.given, "lg#")
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("ParseMarker(%q) = %d, %v; want %d, %v", tt.given, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestUsers(t *testing.T) {
	u := Users("u", 5000)
	if len(u) != 5000 || u[0] != "u0001" || u[4999] != "u5000" {
		t.Fatalf("Users = %v ... %v", u[0], u[len(u)-1])
	}
	if u := Users("m", 12000); u[0] != "m00001" {
		t.Fatalf("width grows with n: %s", u[0])
	}
}

func testTarget(base string) Target {
	return Target{URL: base, App: "helpdesk", AgentID: 1000002, CorpID: testCorp, Token: testToken, EncodingAESKey: testAESKey}
}

func TestPrepareMakesValidDistinctCallbacks(t *testing.T) {
	cfg := Config{Target: testTarget("http://127.0.0.1:1"), Users: Users("u", 3), TextPrefix: "echo "}
	reqs, err := Prepare(cfg, 40)
	if err != nil {
		t.Fatal(err)
	}
	c, err := wecom.NewCrypter(testToken, testAESKey, testCorp)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for i, r := range reqs {
		q, _ := url.ParseQuery(r.Query)
		plain, err := c.Decrypt(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), r.Body)
		if err != nil {
			t.Fatalf("#%d does not decrypt: %v", i, err)
		}
		d, err := wecom.ParseInbound(plain)
		if err != nil {
			t.Fatalf("#%d does not parse: %v", i, err)
		}
		if d.User != r.User || d.MsgType != string(r.Kind) {
			t.Fatalf("#%d: %+v does not match %+v", i, d, r)
		}
		if r.Kind == KindText {
			if seq, ok := ParseMarker(d.Content, "lg#"); !ok || seq != r.Seq || !strings.HasPrefix(d.Content, "echo ") {
				t.Fatalf("#%d content %q", i, d.Content)
			}
		}
		key := wecom.DedupKey(d, plain)
		if ids[key] {
			t.Fatalf("#%d repeats dedup key %s: the hub would merge it", i, key)
		}
		ids[key] = true
	}
	got := CountKinds(reqs)
	want := map[Kind]int{KindText: 28, KindEvent: 4, KindImage: 4, KindLocation: 4}
	for _, k := range sortedKinds(want) {
		if got[k] != want[k] {
			t.Fatalf("kinds %v, want %v", got, want)
		}
	}
}

func TestPrepareRejects(t *testing.T) {
	tests := []struct {
		name  string
		given Config
		n     int
	}{
		{"not loopback", Config{Target: testTarget("http://192.168.1.1"), Users: []string{"a"}}, 1},
		{"no users", Config{Target: testTarget("http://127.0.0.1")}, 1},
		{"zero count", Config{Target: testTarget("http://127.0.0.1"), Users: []string{"a"}}, 0},
		{"bad key", Config{Target: Target{URL: "http://127.0.0.1", App: "a", CorpID: "c", Token: "t", EncodingAESKey: "short"}, Users: []string{"a"}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Prepare(tt.given, tt.n); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestValidate(t *testing.T) {
	base := Config{Target: testTarget("http://127.0.0.1")}
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr error
	}{
		{"defaults ok", func(*Config) {}, nil},
		{"negative rate", func(c *Config) { c.Rate = -1 }, ErrConfig},
		{"too long", func(c *Config) { c.Duration = time.Hour }, ErrConfig},
		{"negative concurrency", func(c *Config) { c.Concurrency = -2 }, ErrConfig},
		{"remote", func(c *Config) { c.Target.URL = "http://8.8.8.8" }, ErrNotLoopback},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mod(&c)
			err := c.Validate()
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Validate = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// serve runs h on 127.0.0.1 until the test ends.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

func TestRunOpenLoopKeepsTheRateAndCountsErrors(t *testing.T) {
	var hits atomic.Int64
	base := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if hits.Add(1)%10 == 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}
	}))
	var progress atomic.Int64
	cfg := Config{Target: testTarget(base), Users: Users("u", 10), Rate: 200, Duration: 1500 * time.Millisecond,
		Progress: func(Progress) { progress.Add(1) }}
	reqs, err := Prepare(cfg, 1000)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	res, err := g.Run(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	// 1.5 s at 200/s: 300 due, whatever the host's speed.
	if res.Sent != 300 {
		t.Fatalf("sent %d, want 300 (the duration bounds an open-loop run)", res.Sent)
	}
	if res.OK+res.Failed != res.Sent || res.Errors["503"] != res.Failed || res.Failed != 30 {
		t.Fatalf("ok %d failed %d errors %v", res.OK, res.Failed, res.Errors)
	}
	if res.Latency.Count() != res.OK || res.Latency.Percentile(50) <= 0 {
		t.Fatalf("latency samples %d", res.Latency.Count())
	}
	if progress.Load() == 0 {
		t.Fatal("no progress reported")
	}
}

func TestRunClosedLoopStopsAtTheCount(t *testing.T) {
	base := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	cfg := Config{Target: testTarget(base), Users: Users("u", 10), Concurrency: 8, Duration: 20 * time.Second}
	reqs, err := Prepare(cfg, 250)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := New(cfg)
	defer g.Close()
	res, err := g.Run(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 250 || res.OK != 250 || res.Throughput() <= 0 {
		t.Fatalf("sent %d ok %d", res.Sent, res.OK)
	}
	if res.Elapsed > 15*time.Second {
		t.Fatalf("took %s: should stop when the requests run out", res.Elapsed)
	}
}

func TestRunLatencyCountsFromTheDueTime(t *testing.T) {
	// One worker and a server that takes 20 ms: requests due every 5 ms queue,
	// and their latency must include the queueing (no coordinated omission).
	base := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(20 * time.Millisecond)
	}))
	cfg := Config{Target: testTarget(base), Users: Users("u", 2), Rate: 200, Concurrency: 1, Duration: 200 * time.Millisecond}
	reqs, _ := Prepare(cfg, 40)
	g, _ := New(cfg)
	defer g.Close()
	res, err := g.Run(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if max := res.Latency.Max(); max < 300*time.Millisecond {
		t.Fatalf("max latency %s: the queue behind a slow server is not counted", max)
	}
}

type fakeWeCom struct{ errcode string }

func (f fakeWeCom) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"errcode":`+f.errcode+`,"errmsg":"ok","msgid":"x"}`)
}

func TestRecorder(t *testing.T) {
	tests := []struct {
		name    string
		errcode string
		path    string
		body    string
		want    int
	}{
		{"echo reply", "0", "/cgi-bin/message/send", `{"msgtype":"text","text":{"content":"echo: echo lg#5"}}`, 1},
		{"refused by WeCom", "45009", "/cgi-bin/message/send", `{"msgtype":"text","text":{"content":"echo: lg#5"}}`, 0},
		{"no marker", "0", "/cgi-bin/message/send", `{"msgtype":"text","text":{"content":"hello"}}`, 0},
		{"not text", "0", "/cgi-bin/message/send", `{"msgtype":"markdown","markdown":{"content":"lg#5"}}`, 0},
		{"other API", "0", "/cgi-bin/appchat/send", `{"msgtype":"text","text":{"content":"lg#5"}}`, 0},
		{"bad json", "0", "/cgi-bin/message/send", `{`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := NewRecorder(fakeWeCom{tt.errcode}, "")
			base := serve(t, rec)
			resp, err := http.Post(base+tt.path, "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(b), `"errcode":`+tt.errcode) {
				t.Fatalf("answer %s was not passed through", b)
			}
			if rec.Count() != tt.want {
				t.Fatalf("count %d, want %d", rec.Count(), tt.want)
			}
		})
	}
}

func TestRecorderEndToEnd(t *testing.T) {
	rec := NewRecorder(fakeWeCom{"0"}, "")
	base := serve(t, rec)
	cfg := Config{Target: testTarget("http://127.0.0.1"), Users: Users("u", 2), Mix: Mix{KindText: 1}}
	reqs, _ := Prepare(cfg, 3)
	due := time.Now()
	res := &Result{OK: 3, Schedule: []time.Time{due, due, due}, Answered: []bool{true, true, true}}
	for _, seq := range []string{"0", "2", "2"} {
		resp, err := http.Post(base+"/cgi-bin/message/send", "application/json",
			strings.NewReader(`{"msgtype":"text","text":{"content":"echo: lg#`+seq+`"}}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n, err := rec.WaitCount(ctx, 2); err != nil || n != 2 {
		t.Fatalf("WaitCount = %d, %v", n, err)
	}
	lat, missing := rec.EndToEnd(reqs, res)
	if lat.Count() != 2 || missing != 1 || rec.Duplicates() != 1 {
		t.Fatalf("latencies %d missing %d dups %d", lat.Count(), missing, rec.Duplicates())
	}
	// The timeline gives the same replies, each with its due time.
	var dues []time.Time
	var seqs []int64
	var total time.Duration
	if m := rec.EachReply(reqs, res, func(seq int64, d time.Time, l time.Duration) {
		seqs, dues = append(seqs, seq), append(dues, d)
		total += l
	}); m != 1 || len(dues) != 2 {
		t.Fatalf("EachReply: %d replies, %d missing", len(dues), m)
	}
	if seqs[0] >= seqs[1] {
		t.Errorf("EachReply: sequence numbers %v, want them in request order", seqs)
	}
	if !dues[0].Equal(due) || total <= 0 || total != lat.Percentile(0)+lat.Max() {
		t.Errorf("EachReply: dues %v, latency sum %s (percentiles %s + %s)", dues, total, lat.Percentile(0), lat.Max())
	}
}

func TestLatenciesPercentiles(t *testing.T) {
	l := NewLatencies(0)
	if l.Percentile(99) != 0 {
		t.Fatal("empty must answer 0")
	}
	for i := 100; i >= 1; i-- {
		l.Add(time.Duration(i) * time.Millisecond)
	}
	for _, tt := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {99.9, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := l.Percentile(tt.p); got != tt.want {
			t.Errorf("p%v = %s, want %s", tt.p, got, tt.want)
		}
	}
}

func TestPrepareSignsEachRequestForItsDueSecond(t *testing.T) {
	cfg := Config{Target: Target{URL: "http://127.0.0.1:1", App: "helpdesk", AgentID: 1000002, CorpID: "ww0123456789abcdef",
		Token: "QDG6eK", EncodingAESKey: "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"}, Users: []string{"u1"}, Rate: 100}
	reqs, err := Prepare(cfg, 60001) // ten minutes at 100/s
	if err != nil {
		t.Fatal(err)
	}
	first, _ := url.ParseQuery(reqs[0].Query)
	last, _ := url.ParseQuery(reqs[60000].Query)
	t0, _ := strconv.ParseInt(first.Get("timestamp"), 10, 64)
	t1, _ := strconv.ParseInt(last.Get("timestamp"), 10, 64)
	if t1-t0 != 600 {
		t.Fatalf("last request signed %d s after the first, want 600", t1-t0)
	}
}
