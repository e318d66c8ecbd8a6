// Command wxhub-bench is the hub's lab, kept out of the product binary: `run`
// measures the hub against its ceiling (package bench, `make bench`, `make
// soak`), `load` is the load generator, `nats` a NATS server of its own for a
// hub measured on an external cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{"run", "measure the hub against its ceiling; writes docs/benchmarks.md with --out", benchCmd},
		{"load", "load generator: virtual members post callbacks to a gateway on loopback", loadCmd},
		{"nats", "a NATS server with JetStream in a process of its own (run --external-nats starts it)", natsCmd},
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: wxhub-bench <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(os.Stderr, "  %-6s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'wxhub-bench <command> -h' for a command's flags.")
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, c := range commands() {
		if c.name == os.Args[1] {
			err := c.run(ctx, os.Args[2:])
			if errors.Is(err, flag.ErrHelp) {
				os.Exit(0)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "wxhub-bench "+c.name+": "+err.Error())
				os.Exit(1)
			}
			return
		}
	}
	if os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		return
	}
	fmt.Fprintf(os.Stderr, "wxhub-bench: unknown command %q\n", os.Args[1])
	usage()
	os.Exit(2)
}
