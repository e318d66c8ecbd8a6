// Command wxhub-bench is the hub's lab, kept out of the product binary: `run`
// measures the hub against its ceiling (package bench, `make bench`, `make
// soak`), `load` is the load generator, `nats` a NATS server of its own for a
// hub measured on an external cluster.
package main

import (
	"os"

	"github.com/wxhub/wxhub/internal/cli"
)

func commands() []cli.Command {
	return []cli.Command{
		{Name: "run", Summary: "measure the hub against its ceiling; writes docs/benchmarks.md with --out", Run: benchCmd},
		{Name: "load", Summary: "load generator: virtual members post callbacks to a gateway on loopback", Run: loadCmd},
		{Name: "nats", Summary: "a NATS server with JetStream in a process of its own (run --external-nats starts it)", Run: natsCmd},
	}
}

func main() { cli.Main("wxhub-bench", commands(), os.Args) }
