# sluice — see README.md. Every target works on a fresh clone: tools the
# targets need are fetched from the Go module proxy at pinned versions.

GO          ?= go
PKGS        ?= ./...
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 5s
CRASH_ITERS ?= 1000
BIN         := bin/sluice

export CGO_ENABLED ?= 1

.PHONY: all build test test-race lint bench fuzz fuzz-short crash chaos chaos-short ci run clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/sluice

# The tests, with the race detector on: every package's tests must be
# race-clean, so there is one way to run them.
test:
	$(GO) test -race -count=1 $(PKGS)

test-race: test

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# Every fuzz target, FUZZTIME each (make fuzz FUZZTIME=2m for a long run).
fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

fuzz-short:
	FUZZTIME=3s scripts/fuzz.sh

# The storage crash tests at full length: CRASH_ITERS SIGKILLs of a child
# appending with fsync=always, and of one appending to a compacted log while
# it cleans it (TestCrashDuringClean).
crash:
	SLUICE_CRASH_ITERS=$(CRASH_ITERS) $(GO) test -count=1 -run 'TestCrash' -timeout 60m -v ./log/

# The chaos suite (internal/chaos, docs/testing.md): 3 brokers in network
# namespaces under a seeded fault schedule; root and Linux. SEED= changes
# the schedule. chaos-short is the CI run (90 s of faults and the leader
# isolation test, under 3 minutes); chaos runs every fault for 5 minutes
# with fsync=always and with fsync=interval, a run with no faults, and the
# leader isolation test.
SEED        ?= 1
CHAOS_BIN   := bin/sluice-chaos
CHAOS_RUN    = SLUICE_BIN=$(abspath $(CHAOS_BIN)) SLUICE_CHAOS_SEED=$(SEED)

$(CHAOS_BIN): FORCE
	CGO_ENABLED=0 $(GO) build -o $(CHAOS_BIN) ./cmd/sluice

FORCE:

chaos-short: $(CHAOS_BIN)
	$(CHAOS_RUN) SLUICE_CHAOS_FAULT_TIME=90s SLUICE_CHAOS_FAULTS=short CHAOS_TIMEOUT=8m \
		scripts/chaos.sh -run '^(TestLeaderIsolation|TestChaos)$$'

chaos: $(CHAOS_BIN)
	$(CHAOS_RUN) SLUICE_CHAOS_FAULT_TIME=5m SLUICE_CHAOS_FAULTS=all SLUICE_CHAOS_FSYNC=always SLUICE_CHAOS_RATE=700 CHAOS_TIMEOUT=20m \
		scripts/chaos.sh -run '^TestChaos$$'
	$(CHAOS_RUN) SLUICE_CHAOS_FAULT_TIME=5m SLUICE_CHAOS_FAULTS=all SLUICE_CHAOS_FSYNC=interval SLUICE_CHAOS_RATE=700 CHAOS_TIMEOUT=20m \
		scripts/chaos.sh -run '^TestChaos$$'
	$(CHAOS_RUN) SLUICE_CHAOS_FAULT_TIME=5m SLUICE_CHAOS_FAULTS=none SLUICE_CHAOS_RATE=700 CHAOS_TIMEOUT=20m \
		scripts/chaos.sh -run '^TestChaos$$'
	$(CHAOS_RUN) scripts/chaos.sh -run '^TestLeaderIsolation$$'

ci: lint test fuzz-short chaos-short

# A single-node broker on 127.0.0.1:7092 with its data in ./data.
run: build
	@echo "sluice: starting a broker on 127.0.0.1:7092, data in ./data (Ctrl-C stops it)"
	@echo "  try, in another terminal:"
	@echo "    ./$(BIN) topic create demo --partitions 3"
	@printf '%s\n' "    printf 'hello\\nworld\\n' | ./$(BIN) produce demo"
	@echo "    ./$(BIN) consume demo --from-beginning --max-messages 2"
	@exec $(BIN) broker --listen 127.0.0.1:7092 --data-dir ./data

clean:
	rm -rf bin
