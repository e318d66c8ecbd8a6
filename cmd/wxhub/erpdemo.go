package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/wxhub/wxhub/connectors/erp/erpdemo"
)

// erpdemoCmd runs the sample ERP on its own (docker-compose, integrators'
// experiments); `wxhub demo` runs it in-process.
func erpdemoCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("erpdemo", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8081", "address of the sample ERP's HTTP API")
	hub := fs.String("hub", "http://127.0.0.1:8080", "wxhub's gateway, where approvals are pushed")
	key := fs.String("key", os.Getenv("WXHUB_API_KEY"), "push API key (default $WXHUB_API_KEY)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := newLogger("info", "console")
	if err != nil {
		return err
	}
	s := erpdemo.New(erpdemo.Config{HubURL: *hub, HubAPIKey: *key, Logger: log})
	if err := s.Start(*listen); err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(os.Stderr, "sample ERP on %s, pushing approvals to %s\n", s.URL(), *hub)
	<-ctx.Done()
	return nil
}
