package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/wxhub/wxhub/hub"
)

// traceHop and traceAnswer mirror the dashboard's trace API
// (GET /dashboard/api/trace, dashboard.Trace) as JSON.
type traceHop struct {
	Kind       string    `json:"kind"`
	Stream     string    `json:"stream"`
	Subject    string    `json:"subject"`
	Time       time.Time `json:"time"`
	ID         string    `json:"id"`
	TraceID    string    `json:"trace_id"`
	Summary    string    `json:"summary"`
	Inferred   bool      `json:"inferred"`
	SinceFirst float64   `json:"since_first_ms"`
}

type traceAnswer struct {
	User      string            `json:"user"`
	Hops      []traceHop        `json:"hops"`
	Scanned   map[string]uint64 `json:"scanned"`
	Truncated bool              `json:"truncated"`
}

// traceCmd prints the path of a user's last messages (callback -> route ->
// connector -> reply -> WeCom) from the dashboard's trace API.
func traceCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	url := fs.String("url", envOr("WXHUB_URL", "http://127.0.0.1:8080"), "the hub's gateway (default $WXHUB_URL or the demo's)")
	token := fs.String("token", envOr("WXHUB_DASHBOARD_TOKEN", hub.DemoDashboardToken), "a dashboard token (default $WXHUB_DASHBOARD_TOKEN or the demo's)")
	id := fs.String("id", "", "trace one message instead: a message id, event id or WeChat MsgId")
	last := fs.Int("last", 5, "how many of the user's last conversations (traces) to print")
	if err := fs.Parse(args); err != nil {
		return err
	}
	user := fs.Arg(0)
	if (user == "") == (*id == "") || fs.NArg() > 1 {
		return errors.New("usage: wxhub trace [--url URL] [--token T] USER   or   wxhub trace --id ID")
	}
	c := resty.New().SetBaseURL(strings.TrimRight(*url, "/")).SetTimeout(40 * time.Second).
		SetRedirectPolicy(resty.NoRedirectPolicy())
	// The dashboard's login: the token in a form, a session cookie back.
	resp, err := c.R().SetContext(ctx).SetFormData(map[string]string{"token": *token}).Post("/dashboard/login")
	if resp == nil || resp.StatusCode() != http.StatusSeeOther {
		if resp != nil && resp.StatusCode() == http.StatusUnauthorized {
			return errors.New("dashboard login refused: wrong token (--token or $WXHUB_DASHBOARD_TOKEN)")
		}
		if resp != nil && resp.StatusCode() == http.StatusNotFound {
			return fmt.Errorf("no dashboard at %s (dashboard.admin_token or users must be configured)", *url)
		}
		return fmt.Errorf("dashboard login at %s: %v", *url, errOr(err, resp))
	}
	var tr traceAnswer
	resp, err = c.R().SetContext(ctx).SetCookies(resp.Cookies()).SetQueryParams(map[string]string{"user": user, "id": *id}).
		SetResult(&tr).Get("/dashboard/api/trace")
	if err != nil || resp.IsError() {
		return fmt.Errorf("trace: %v", errOr(err, resp))
	}
	printTrace(tr, *last)
	return nil
}

func errOr(err error, resp *resty.Response) any {
	if err != nil {
		return err
	}
	return fmt.Sprintf("HTTP %d %s", resp.StatusCode(), strings.TrimSpace(string(resp.Body())))
}

// printTrace groups the hops by trace (one inbound message and what followed
// from it), newest traces last, at most last of them.
func printTrace(tr traceAnswer, last int) {
	if len(tr.Hops) == 0 {
		fmt.Println("nothing found (the streams keep 7 days; scanned:", tr.Scanned, ")")
		return
	}
	// A status record has no trace id: it joins the trace of its message.
	traceOf := map[string]string{}
	for _, h := range tr.Hops {
		if h.TraceID != "" && h.ID != "" {
			traceOf[h.ID] = h.TraceID
		}
	}
	groups := map[string][]traceHop{}
	var order []string
	for _, h := range tr.Hops {
		k := h.TraceID
		if k == "" {
			k = traceOf[h.ID]
		}
		if k == "" {
			k = "-"
		}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], h)
	}
	first := func(k string) time.Time { return groups[k][0].Time }
	for _, hs := range groups {
		sort.SliceStable(hs, func(i, j int) bool { return hs[i].Time.Before(hs[j].Time) })
	}
	sort.SliceStable(order, func(i, j int) bool { return first(order[i]).Before(first(order[j])) })
	if last > 0 && len(order) > last {
		order = order[len(order)-last:]
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	for _, k := range order {
		hs := groups[k]
		fmt.Fprintf(tw, "trace %s\n", k)
		for _, h := range hs {
			where := h.Stream
			if h.Inferred {
				where += " (inferred)"
			}
			fmt.Fprintf(tw, "  %s\t+%dms\t%s\t%s\t%s\n", h.Time.Local().Format("15:04:05.000"), h.Time.Sub(hs[0].Time).Milliseconds(),
				h.Kind, where, truncate(strings.ReplaceAll(h.Summary, "\n", " ⏎ "), 120))
		}
	}
	_ = tw.Flush()
	if tr.Truncated {
		fmt.Println("(truncated: the user has more messages than one trace shows)")
	}
}
