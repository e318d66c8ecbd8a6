package sender

import (
	"errors"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC)

func TestLedgerWait(t *testing.T) {
	perMin := []rule{{Name: "m", Limit: 3, Span: time.Minute}}
	tests := []struct {
		name    string
		given   []time.Duration // hits, as offsets from t0
		at      time.Duration
		n       int
		rules   []rule
		margin  time.Duration
		want    time.Duration
		wantErr error
	}{
		{name: "empty", at: 0, n: 1, rules: perMin, want: 0},
		{name: "room left", given: []time.Duration{0, time.Second}, at: 2 * time.Second, n: 1, rules: perMin, want: 0},
		{name: "full: wait for the oldest", given: []time.Duration{0, time.Second, 2 * time.Second}, at: 10 * time.Second, n: 1, rules: perMin, want: 50 * time.Second},
		{name: "full: margin extends", given: []time.Duration{0, time.Second, 2 * time.Second}, at: 10 * time.Second, n: 1, rules: perMin, margin: time.Second, want: 51 * time.Second},
		{name: "oldest expired exactly", given: []time.Duration{0, time.Second, 2 * time.Second}, at: time.Minute, n: 1, rules: perMin, want: 0},
		{name: "two needed", given: []time.Duration{0, time.Second, 2 * time.Second}, at: 10 * time.Second, n: 2, rules: perMin, want: 51 * time.Second},
		{name: "never fits", at: 0, n: 4, rules: perMin, wantErr: ErrNeverFits},
		{name: "disabled rule", given: []time.Duration{0, 0, 0, 0}, at: 0, n: 1, rules: []rule{{Name: "m", Limit: -1, Span: time.Minute}}, want: 0},
		{
			name:  "bucketed: whole bucket counts until its end + span",
			given: []time.Duration{100 * time.Millisecond, 900 * time.Millisecond, 1500 * time.Millisecond},
			at:    2 * time.Second, n: 1,
			rules: []rule{{Name: "m", Limit: 3, Span: time.Minute, Res: time.Second}},
			want:  59 * time.Second, // bucket [0s,1s) frees at 61s
		},
		{
			name:  "longest of two rules wins",
			given: []time.Duration{0, time.Minute, 2 * time.Minute},
			at:    3 * time.Minute, n: 1,
			rules: []rule{{Name: "m", Limit: 1, Span: time.Minute}, {Name: "h", Limit: 3, Span: time.Hour}},
			want:  57 * time.Minute,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var l ledger
			for _, g := range tc.given {
				l.add(t0.Add(g), tc.rules, 1, tc.margin)
			}
			got, err := l.wait(t0.Add(tc.at), tc.rules, tc.n, tc.margin)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("wait = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestLedgerAnyWindow drives a greedy sender (send whenever wait says 0) with
// random request times and checks the defining property: no 60 s window, at any
// alignment, holds more than N sends. A token bucket with burst N refilling N a
// minute fails this (2N-1 in the first minute).
func TestLedgerAnyWindow(t *testing.T) {
	rules := []rule{
		{Name: "m", Limit: 30, Span: time.Minute},
		{Name: "h", Limit: 1000, Span: time.Hour, Res: time.Minute},
	}
	for _, margin := range []time.Duration{0, time.Second} {
		rnd := rand.New(rand.NewPCG(1, 2))
		var l ledger
		var sent []time.Time
		now := t0
		for now.Before(t0.Add(3 * time.Hour)) {
			w, err := l.wait(now, rules, 1, margin)
			if err != nil {
				t.Fatal(err)
			}
			if w == 0 {
				l.add(now, rules, 1, margin)
				sent = append(sent, now)
				now = now.Add(time.Duration(rnd.IntN(3000)) * time.Millisecond)
				continue
			}
			now = now.Add(w)
		}
		checkWindows(t, sent, time.Minute, 30)
		checkWindows(t, sent, time.Hour, 1000)
		// And it is not needlessly slow: ~1000 an hour is reached.
		if len(sent) < 2900 {
			t.Fatalf("margin %s: only %d sends in 3h, want about 3000", margin, len(sent))
		}
	}
}

func checkWindows(t *testing.T, sent []time.Time, span time.Duration, limit int) {
	t.Helper()
	sort.Slice(sent, func(i, j int) bool { return sent[i].Before(sent[j]) })
	j := 0
	for i := range sent {
		for sent[i].Sub(sent[j]) >= span {
			j++
		}
		if n := i - j + 1; n > limit {
			t.Fatalf("%d sends in the %s window ending %s, limit %d", n, span, sent[i].Sub(t0), limit)
		}
	}
}

func TestLedgerRemove(t *testing.T) {
	rules := []rule{{Name: "m", Limit: 1, Span: time.Minute}}
	var l ledger
	l.add(t0, rules, 1, 0)
	if w, _ := l.wait(t0, rules, 1, 0); w == 0 {
		t.Fatal("full ledger reports room")
	}
	l.remove(t0, rules, 1)
	if w, _ := l.wait(t0, rules, 1, 0); w != 0 {
		t.Fatalf("after remove wait = %s, want 0", w)
	}
	if !l.empty(t0, rules, 0) {
		t.Fatal("ledger not empty")
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		name    string
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{name: "first, no jitter", attempt: 1, rnd: 1, want: time.Second},
		{name: "first, floor", attempt: 1, rnd: 0, want: 500 * time.Millisecond},
		{name: "doubles", attempt: 4, rnd: 1, want: 8 * time.Second},
		{name: "capped", attempt: 30, rnd: 1, want: time.Minute},
		{name: "capped, jittered", attempt: 30, rnd: 0.5, want: 500*time.Millisecond + (time.Minute-500*time.Millisecond)/2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := backoff(tc.attempt, time.Second, time.Minute, func() float64 { return tc.rnd })
			if got != tc.want {
				t.Fatalf("backoff = %s, want %s", got, tc.want)
			}
		})
	}
}

// The flat view answers as the ledger it was made from, log by log.
func TestUsageViewMatchesLedger(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	rules := []rule{{Name: "m", Limit: 30, Span: time.Minute}, {Name: "h", Limit: 1000, Span: time.Hour, Res: time.Minute}}
	lg := &ledger{}
	for i := range 7 {
		lg.add(t0.Add(time.Duration(i)*13*time.Second), rules, 1+i%2, time.Second)
	}
	v := newUsageView(lg)
	if v == nil {
		t.Fatal("no view for one-letter log names")
	}
	for _, at := range []time.Duration{0, 30 * time.Second, 61 * time.Second, 3 * time.Minute, 2 * time.Hour} {
		now := t0.Add(at)
		for _, r := range rules {
			if got, want := v.used(now, r, time.Second), lg.used(now, r, time.Second); got != want {
				t.Errorf("at +%s rule %s: view used %d, ledger %d", at, r.Name, got, want)
			}
		}
		if got, want := v.empty(now, rules, time.Second), lg.empty(now, rules, time.Second); got != want {
			t.Errorf("at +%s: view empty %v, ledger %v", at, got, want)
		}
	}
	if len(v.log("m")) != len(lg.Logs["m"]) || len(v.log("h")) != len(lg.Logs["h"]) || v.log("x") != nil {
		t.Errorf("logs: m %d/%d, h %d/%d, x %v", len(v.log("m")), len(lg.Logs["m"]), len(v.log("h")), len(lg.Logs["h"]), v.log("x"))
	}
	if newUsageView(&ledger{Logs: map[string][]bucket{"a-very-long-name": {{1, 1}}}}) != nil {
		t.Error("a name over 8 bytes must give no view")
	}
	if e := newUsageView(&ledger{}); e == nil || !e.empty(t0, rules, 0) {
		t.Error("an empty ledger gives an empty, non-nil view")
	}
}
