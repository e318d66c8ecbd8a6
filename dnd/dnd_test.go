package dnd_test

import (
	"errors"
	"testing"
	"time"

	"github.com/wxhub/wxhub/dnd"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		name    string
		given   string
		want    dnd.Command
		window  string
		wantErr error
	}{
		{name: "set", given: "免打扰 22:00-08:00", want: dnd.CmdSet, window: "22:00-08:00"},
		{name: "set, no space, full-width colon", given: "免打扰22：30-7：15", want: dnd.CmdSet, window: "22:30-07:15"},
		{name: "set, hours only, 到", given: "免打扰 12到14", want: dnd.CmdSet, window: "12:00-14:00"},
		{name: "set, tilde", given: " 免打扰  23:00~06:30 ", want: dnd.CmdSet, window: "23:00-06:30"},
		{name: "set, english", given: "DND 22:00-08:00", want: dnd.CmdSet, window: "22:00-08:00"},
		{name: "clear", given: "取消免打扰", want: dnd.CmdClear},
		{name: "show", given: "我的免打扰", want: dnd.CmdShow},
		{name: "missing window", given: "免打扰", wantErr: dnd.ErrWindow},
		{name: "bad hour", given: "免打扰 25:00-08:00", wantErr: dnd.ErrWindow},
		{name: "bad minute", given: "免打扰 22:61-08:00", wantErr: dnd.ErrWindow},
		{name: "empty window", given: "免打扰 08:00-08:00", wantErr: dnd.ErrWindow},
		{name: "garbage window", given: "免打扰 tonight", wantErr: dnd.ErrWindow},
		{name: "ordinary text", given: "订单 1001", wantErr: dnd.ErrNotCommand},
		{name: "word starting with dnd", given: "dndx", wantErr: dnd.ErrNotCommand},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd, w, err := dnd.ParseCommand(tc.given)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if cmd != tc.want {
				t.Fatalf("cmd = %s, want %s", cmd, tc.want)
			}
			if tc.window != "" && w.String() != tc.window {
				t.Fatalf("window = %s, want %s", w, tc.window)
			}
		})
	}
}

func TestWindowQuietAndUntil(t *testing.T) {
	sh, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	night, _ := dnd.ParseWindow("22:00-08:00")
	lunch, _ := dnd.ParseWindow("12:00-13:30")
	at := func(loc *time.Location, y int, m time.Month, d, h, min int) time.Time {
		return time.Date(y, m, d, h, min, 0, 0, loc)
	}
	tests := []struct {
		name      string
		w         dnd.Window
		loc       *time.Location
		given     time.Time
		wantQuiet bool
		wantUntil time.Time
	}{
		{name: "before midnight", w: night, loc: sh, given: at(sh, 2025, 1, 31, 23, 0), wantQuiet: true, wantUntil: at(sh, 2025, 2, 1, 8, 0)},
		{name: "after midnight", w: night, loc: sh, given: at(sh, 2025, 2, 1, 3, 0), wantQuiet: true, wantUntil: at(sh, 2025, 2, 1, 8, 0)},
		{name: "start is inclusive", w: night, loc: sh, given: at(sh, 2025, 2, 1, 22, 0), wantQuiet: true, wantUntil: at(sh, 2025, 2, 2, 8, 0)},
		{name: "end is exclusive", w: night, loc: sh, given: at(sh, 2025, 2, 1, 8, 0), wantQuiet: false},
		{name: "daytime", w: night, loc: sh, given: at(sh, 2025, 2, 1, 12, 0), wantQuiet: false},
		{name: "UTC instant read in Shanghai", w: night, loc: sh, given: time.Date(2025, 2, 1, 15, 0, 0, 0, time.UTC), wantQuiet: true, wantUntil: at(sh, 2025, 2, 2, 8, 0)},
		{name: "same-day window", w: lunch, loc: sh, given: at(sh, 2025, 2, 1, 13, 29), wantQuiet: true, wantUntil: at(sh, 2025, 2, 1, 13, 30)},
		{name: "year end", w: night, loc: sh, given: at(sh, 2025, 12, 31, 23, 30), wantQuiet: true, wantUntil: at(sh, 2026, 1, 1, 8, 0)},
		{name: "DST night keeps 08:00 local", w: night, loc: ny, given: at(ny, 2025, 3, 8, 23, 0), wantQuiet: true, wantUntil: at(ny, 2025, 3, 9, 8, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.w.Quiet(tc.given, tc.loc); got != tc.wantQuiet {
				t.Fatalf("Quiet = %v, want %v", got, tc.wantQuiet)
			}
			want := tc.wantUntil
			if !tc.wantQuiet {
				want = tc.given
			}
			if got := tc.w.Until(tc.given, tc.loc); !got.Equal(want) {
				t.Fatalf("Until = %s, want %s", got, want)
			}
		})
	}
}

func TestEffective(t *testing.T) {
	def := dnd.Window{Start: 22 * 60, End: 8 * 60}
	own := dnd.Window{Start: 23 * 60, End: 7 * 60}
	tests := []struct {
		name   string
		given  dnd.Setting
		found  bool
		def    *dnd.Window
		want   dnd.Window
		wantOn bool
	}{
		{name: "nothing", wantOn: false},
		{name: "company default", def: &def, want: def, wantOn: true},
		{name: "own window wins", given: dnd.Setting{Window: own}, found: true, def: &def, want: own, wantOn: true},
		{name: "off overrides default", given: dnd.Setting{Off: true}, found: true, def: &def, wantOn: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, on := dnd.Effective(tc.given, tc.found, tc.def)
			if on != tc.wantOn || (on && got != tc.want) {
				t.Fatalf("Effective = %v %v, want %v %v", got, on, tc.want, tc.wantOn)
			}
		})
	}
}

func TestKey(t *testing.T) {
	if got := dnd.Key("zhangsan"); got != "zhangsan" {
		t.Fatalf("Key(zhangsan) = %s", got)
	}
	for _, u := range []string{"li.si@corp", "b64_x", "o6_bmjrPTlm6_2sgVt7hMZOPfL2M", "张三"} {
		k := dnd.Key(u)
		for _, r := range k {
			if !(r == '-' || r == '_' || r == '=' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				t.Fatalf("Key(%q) = %q has %q", u, k, r)
			}
		}
	}
	if dnd.Key("b64_x") == "b64_x" {
		t.Fatal("a userid that looks encoded must be encoded too")
	}
}
