# wxhub — the two set-up commands are `make run` and `make test`.
GO      ?= go
BIN     := bin/wxhub
BENCH   := bin/wxhub-bench
PKGS    := ./...
# Packages with goroutines and the bus: always tested with the race detector.
RACE_PKGS := ./bus/... ./gateway/... ./router/... ./sender/... ./connectors/... ./wecom/... ./dashboard/... ./cmd/wxhub/... ./identity/... ./directory/...
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION) -X main.sourceDir=$(CURDIR)

.PHONY: build run test test-go test-race lint bench soak fuzz chaos clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/wxhub

## run: the whole hub on an embedded NATS with the WeCom simulator and sample legacy systems;
## ARGS="--config extra.yaml" adds your rules, connectors' NATS users and apps.
run: build
	./$(BIN) demo $(ARGS)

## test: every test (what CI runs).
test: lint test-go test-race

test-go:
	$(GO) test -count=1 -timeout 8m $(PKGS)

test-race:
	$(GO) test -count=1 -race -timeout 8m $(RACE_PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## bench: load and speed figures against this machine's ceiling, written to docs/benchmarks.md (~3 min).
bench: build
	$(GO) build -o $(BENCH) ./cmd/wxhub-bench
	./$(BENCH) run --bin $(BIN) --out docs/benchmarks.md
	$(GO) test -run '^$$' -bench . -benchtime 1s ./wecom ./gateway

## soak: ten minutes of 1,000 msg/s on `wxhub run`, watching memory (not part of CI).
soak: build
	$(GO) build -o $(BENCH) ./cmd/wxhub-bench
	./$(BENCH) run --bin $(BIN) --phases cost --cost-rate 1000 --cost-load 10m --out docs/soak.md

## chaos: kill -9 of a NATS node and of every component under load on a 3-node cluster, then a rolling restart (not part of CI; ~3 min). The short run is in make test.
chaos:
	WXHUB_CHAOS_LONG=1 WXHUB_CHAOS_REPORT=$(CURDIR)/bin/chaos-report.txt $(GO) test -count=1 -timeout 12m -run '^TestChaos$$' -v ./e2e/ | grep -v logger.go
	@cat bin/chaos-report.txt

## fuzz: 60 s per fuzz target (not part of CI).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecrypt$$' -fuzztime 60s -fuzzminimizetime 5s ./wecom
	$(GO) test -run '^$$' -fuzz '^FuzzParseInbound$$' -fuzztime 60s -fuzzminimizetime 5s ./wecom

clean:
	rm -rf bin data
