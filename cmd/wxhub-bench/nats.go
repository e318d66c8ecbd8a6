package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/wxhub/wxhub/bus"
)

// natsCmd runs a NATS server with JetStream (the bus package's embedded one,
// streams declared) until interrupted: the external cluster of a hub measured
// with `run --external-nats`, in a process of its own so that its memory and
// collections are not the hub's.
func natsCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("nats", flag.ContinueOnError)
	port := fs.Int("port", 4222, "client port on 127.0.0.1")
	dir := fs.String("data-dir", "", "JetStream store (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("--data-dir is required")
	}
	b, err := bus.Open(ctx, bus.Config{DataDir: *dir, Port: *port}, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "NATS on %s\n", b.ClientURL())
	<-ctx.Done()
	return b.Close()
}
