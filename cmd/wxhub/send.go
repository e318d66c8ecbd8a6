package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/go-resty/resty/v2"
)

// sendCmd pushes a text or markdown message through a running hub's push API,
// the way a legacy system would.
func sendCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	base := fs.String("url", "http://127.0.0.1:8080", "the hub's gateway")
	key := fs.String("key", os.Getenv("WXHUB_API_KEY"), "API key (default $WXHUB_API_KEY)")
	app := fs.String("app", "helpdesk", "app to send through")
	to := fs.String("to", "", "recipients, a|b|c (required unless --chat)")
	chat := fs.String("chat", "", "group chat id (appchat) instead of --to")
	priority := fs.String("priority", "normal", "urgent, normal or bulk")
	markdown := fs.Bool("markdown", false, "send the text as markdown")
	dedup := fs.String("dedup-key", "", "idempotency key: the same key sends once")
	status := fs.String("status", "", "print the status of this message id instead of sending")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: wxhub send --to USER [flags] TEXT | wxhub send --status ID")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" {
		return errors.New("--key or WXHUB_API_KEY is required")
	}
	client := resty.New().SetBaseURL(*base).SetTimeout(10 * time.Second).SetAuthToken(*key)
	if *status != "" {
		resp, err := client.R().SetContext(ctx).Get("/api/v1/messages/" + *status)
		if err != nil {
			return err
		}
		fmt.Println(resp.String())
		if resp.IsError() {
			return fmt.Errorf("HTTP %d", resp.StatusCode())
		}
		return nil
	}
	if fs.NArg() != 1 || (*to == "" && *chat == "") {
		fs.Usage()
		return flag.ErrHelp
	}
	body := map[string]any{"app": *app, "priority": *priority}
	if *chat != "" {
		body["chatid"] = *chat
	} else {
		body["touser"] = *to
	}
	if *dedup != "" {
		body["dedup_key"] = *dedup
	}
	if *markdown {
		body["msgtype"] = "markdown"
		body["markdown"] = map[string]string{"content": fs.Arg(0)}
	} else {
		body["msgtype"] = "text"
		body["text"] = map[string]string{"content": fs.Arg(0)}
	}
	resp, err := client.R().SetContext(ctx).SetBody(body).Post("/api/v1/messages")
	if err != nil {
		return err
	}
	if resp.IsError() {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode(), resp.String())
	}
	var acc struct{ ID, Status string }
	json.Unmarshal(resp.Body(), &acc)
	fmt.Printf("%s %s\n", acc.ID, acc.Status)
	return nil
}
