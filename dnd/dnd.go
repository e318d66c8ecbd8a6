// Package dnd is do-not-disturb: a member's quiet hours, the chat commands that
// set them ("免打扰 22:00-08:00", "取消免打扰", "我的免打扰") and their store in the
// wxhub_dnd KV bucket. The sender reads it to hold non-urgent messages back; a
// connector (the lead's "dnd" connector) parses the commands and writes it.
package dnd

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Errors of ParseWindow and ParseCommand, wrapped with the detail.
var (
	// ErrNotCommand: the text is not a do-not-disturb command (route it elsewhere).
	ErrNotCommand = errors.New("dnd: not a do-not-disturb command")
	// ErrWindow: a command or config value whose window is malformed.
	ErrWindow = errors.New("dnd: invalid quiet window")
)

// Window is a daily quiet period [Start, End) in minutes after local midnight.
// Start > End crosses midnight (22:00-08:00). Start == End is invalid.
type Window struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

const day = 24 * 60

var windowRe = regexp.MustCompile(`^(\d{1,2})(?:[:：](\d{2}))?\s*(?:-|~|～|－|—|到|至)\s*(\d{1,2})(?:[:：](\d{2}))?$`)

// ParseWindow reads "22:00-08:00" (also "22-8", full-width colon, "~", "到", "至").
func ParseWindow(s string) (Window, error) {
	m := windowRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return Window{}, fmt.Errorf("%w: %q, want HH:MM-HH:MM such as 22:00-08:00", ErrWindow, s)
	}
	clock := func(h, mm string) (int, error) {
		hv, _ := strconv.Atoi(h)
		mv := 0
		if mm != "" {
			mv, _ = strconv.Atoi(mm)
		}
		if hv > 24 || mv > 59 || (hv == 24 && mv != 0) {
			return 0, fmt.Errorf("%w: %q: %s:%02d is not a time of day", ErrWindow, s, h, mv)
		}
		return (hv*60 + mv) % day, nil
	}
	start, err := clock(m[1], m[2])
	if err != nil {
		return Window{}, err
	}
	end, err := clock(m[3], m[4])
	if err != nil {
		return Window{}, err
	}
	if start == end {
		return Window{}, fmt.Errorf("%w: %q: start and end are equal", ErrWindow, s)
	}
	return Window{Start: start, End: end}, nil
}

// String formats the window as HH:MM-HH:MM.
func (w Window) String() string {
	return fmt.Sprintf("%02d:%02d-%02d:%02d", w.Start/60, w.Start%60, w.End/60, w.End%60)
}

// Valid reports whether the window has a length and both ends inside a day.
func (w Window) Valid() bool {
	return w.Start >= 0 && w.Start < day && w.End >= 0 && w.End < day && w.Start != w.End
}

// Quiet reports whether t falls inside the window, read in loc.
func (w Window) Quiet(t time.Time, loc *time.Location) bool {
	if !w.Valid() {
		return false
	}
	t = t.In(loc)
	m := t.Hour()*60 + t.Minute()
	if w.Start < w.End {
		return m >= w.Start && m < w.End
	}
	return m >= w.Start || m < w.End
}

// Until returns the instant the quiet period containing t ends, or t itself when
// t is not quiet. Computed on the calendar of loc, so DST days come out right.
func (w Window) Until(t time.Time, loc *time.Location) time.Time {
	if !w.Quiet(t, loc) {
		return t
	}
	lt := t.In(loc)
	y, mo, d := lt.Date()
	m := lt.Hour()*60 + lt.Minute()
	if w.Start > w.End && m >= w.Start {
		d++ // crossing midnight: ends tomorrow
	}
	return time.Date(y, mo, d, w.End/60, w.End%60, 0, 0, loc)
}

// Command is what a do-not-disturb chat message asks for.
type Command int

// Commands.
const (
	CmdSet   Command = iota + 1 // "免打扰 22:00-08:00": set my quiet hours
	CmdClear                    // "取消免打扰": no quiet hours for me (overrides the company default)
	CmdShow                     // "我的免打扰": tell me my quiet hours
)

func (c Command) String() string {
	switch c {
	case CmdSet:
		return "set"
	case CmdClear:
		return "clear"
	case CmdShow:
		return "show"
	}
	return "none"
}

var (
	clearWords = []string{"取消免打扰", "关闭免打扰", "免打扰关闭", "免打扰取消", "免打扰 off", "dnd off"}
	showWords  = []string{"我的免打扰", "查看免打扰", "免打扰?", "免打扰？", "dnd?"}
	setPrefix  = []string{"免打扰", "dnd"}
)

// ParseCommand reads a chat message. It returns ErrNotCommand for ordinary text
// and an error wrapping ErrWindow for "免打扰" with a bad or missing window, so the
// caller can answer with the expected format instead of routing it elsewhere.
func ParseCommand(text string) (Command, Window, error) {
	t := strings.ToLower(strings.Join(strings.Fields(text), " "))
	for _, w := range clearWords {
		if t == w {
			return CmdClear, Window{}, nil
		}
	}
	for _, w := range showWords {
		if t == w {
			return CmdShow, Window{}, nil
		}
	}
	for _, p := range setPrefix {
		rest, ok := strings.CutPrefix(t, p)
		if !ok {
			continue
		}
		rest = strings.TrimSpace(rest)
		if rest == "" {
			return 0, Window{}, fmt.Errorf("%w: missing, send e.g. 免打扰 22:00-08:00", ErrWindow)
		}
		if p == "dnd" && rest[0] >= 'a' && rest[0] <= 'z' {
			break // "dndx..." is ordinary text
		}
		w, err := ParseWindow(rest)
		if err != nil {
			return 0, Window{}, err
		}
		return CmdSet, w, nil
	}
	return 0, Window{}, ErrNotCommand
}
