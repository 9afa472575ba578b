# sluice — see README.md. Every target works on a fresh clone: tools the
# targets need are fetched from the Go module proxy at pinned versions.

GO          ?= go
PKGS        ?= ./...
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 5s
CRASH_ITERS ?= 1000
BIN         := bin/sluice

# Stamped into the binary (sluice version): the nearest tag, the commit,
# the build time. go build without them still reports what the toolchain
# recorded.
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD 2>/dev/null || echo +dirty)
BUILD_DATE  ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS     := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.buildDate=$(BUILD_DATE)

export CGO_ENABLED ?= 1

.PHONY: all build test test-race lint lint-darwin bench fuzz fuzz-short crash chaos chaos-short chaos-group chaos-gossip ci run clean kafka-ref kafka-ref-stop kafka-versus image image-test compose-test release screenshot

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/sluice

# The tests, with the race detector on: every package's tests must be
# race-clean, so there is one way to run them. internal/cluster's
# multi-broker tests take about 9 minutes on 2 quiet cores, close to go
# test's default 10-minute bound for a package: the bound is 25 minutes.
test:
	$(GO) test -race -count=1 -timeout 25m $(PKGS)

test-race: test

lint: lint-darwin
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

# The release's other system: every package and test compiles and vets for
# darwin/arm64 (the Linux-only parts have *_other.go fallbacks: docs/deploy.md).
# Cross-compiling is cheap and needs no Mac.
lint-darwin:
	CGO_ENABLED=0 GOOS=darwin GOARCH=arm64 $(GO) vet $(PKGS)

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
# CHAOS_SECURE=1 runs any chaos target on a secure cluster: TLS (mutual)
# on every listener and between brokers, encrypted gossip, SCRAM logins,
# the authorizer, the workload as a user with ACLs (internal/chaos/secure.go).
SEED        ?= 1
CHAOS_SECURE ?=
CHAOS_BIN   := bin/sluice-chaos
CHAOS_RUN    = SLUICE_BIN=$(abspath $(CHAOS_BIN)) SLUICE_CHAOS_SEED=$(SEED) SLUICE_CHAOS_SECURE=$(CHAOS_SECURE)

$(CHAOS_BIN): FORCE
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(CHAOS_BIN) ./cmd/sluice

FORCE:

chaos-short: $(CHAOS_BIN)
	$(CHAOS_RUN) SLUICE_CHAOS_FAULT_TIME=90s SLUICE_CHAOS_FAULTS=short CHAOS_TIMEOUT=8m \
		scripts/chaos.sh -run '^(TestLeaderIsolation|TestChaos)$$'

# chaos-group is issue 15's consumer-group workload (TestChaosGroup): 60 s
# of kill-leader, isolate-leader, kill-coordinator and isolate-coordinator
# while a group reads, about 1m45s. Not in chaos-short, which it would take
# past 3.5 minutes.
chaos-group: $(CHAOS_BIN)
	$(CHAOS_RUN) SLUICE_CHAOS_GROUP_FAULT_TIME=60s CHAOS_TIMEOUT=8m \
		scripts/chaos.sh -run '^TestChaosGroup$$'

# chaos-queue is issue 16's queue-group workload (TestChaosQueue): 60 s of
# the same faults while queue workers receive, reject, hang and are
# stopped; then the group drains the topic (a stopped worker's records
# wait for their 30 s lease). Not in chaos-short; `make chaos` runs it
# with 3 minutes of faults.
chaos-queue: $(CHAOS_BIN)
	$(CHAOS_RUN) SLUICE_CHAOS_QUEUE_FAULT_TIME=60s CHAOS_TIMEOUT=10m \
		scripts/chaos.sh -run '^TestChaosQueue$$'

# chaos-gossip: 60 s of gossip-only cuts (issue 13 item 4), where every
# cut must leave leadership where it was (CheckGossipCut), about 80 s.
chaos-gossip: $(CHAOS_BIN)
	$(CHAOS_RUN) SLUICE_CHAOS_FAULT_TIME=60s SLUICE_CHAOS_FAULTS=gossip-cut CHAOS_TIMEOUT=8m \
		scripts/chaos.sh -run '^TestChaos$$'

chaos: $(CHAOS_BIN)
	$(CHAOS_RUN) SLUICE_CHAOS_FAULT_TIME=5m SLUICE_CHAOS_FAULTS=all SLUICE_CHAOS_FSYNC=always SLUICE_CHAOS_RATE=700 CHAOS_TIMEOUT=20m \
		scripts/chaos.sh -run '^TestChaos$$'
	$(CHAOS_RUN) SLUICE_CHAOS_FAULT_TIME=5m SLUICE_CHAOS_FAULTS=all SLUICE_CHAOS_FSYNC=interval SLUICE_CHAOS_RATE=700 CHAOS_TIMEOUT=20m \
		scripts/chaos.sh -run '^TestChaos$$'
	$(CHAOS_RUN) SLUICE_CHAOS_FAULT_TIME=5m SLUICE_CHAOS_FAULTS=none SLUICE_CHAOS_RATE=700 CHAOS_TIMEOUT=20m \
		scripts/chaos.sh -run '^TestChaos$$'
	$(CHAOS_RUN) SLUICE_CHAOS_FAULT_TIME=60s SLUICE_CHAOS_FAULTS=gossip-cut CHAOS_TIMEOUT=8m \
		scripts/chaos.sh -run '^TestChaos$$'
	$(CHAOS_RUN) scripts/chaos.sh -run '^TestLeaderIsolation$$'
	$(CHAOS_RUN) SLUICE_CHAOS_GROUP_FAULT_TIME=3m CHAOS_TIMEOUT=12m scripts/chaos.sh -run '^TestChaosGroup$$'
	$(CHAOS_RUN) SLUICE_CHAOS_QUEUE_FAULT_TIME=3m CHAOS_TIMEOUT=14m scripts/chaos.sh -run '^TestChaosQueue$$'

# The elastic checks of issue 20 (internal/chaos/elastic_test.go,
# docs/testing.md): 3 or 4 broker processes on 127.0.0.1 (no namespaces,
# no root) under an acks=all verified load while partitions move (a move
# cancelled half way, the controller leader and a new replica's broker
# SIGKILLed half way), a 4th broker joins with auto.balance=on-join, a
# broker is drained, and every broker is restarted in turn. About 2.5
# minutes; ELASTIC_RUN=TestElasticGrow runs one. elastic-short, in ci,
# is the drain and the rolling restart: about 40 s.
ELASTIC_RUN ?= TestElastic.*

.PHONY: elastic elastic-short
elastic: $(CHAOS_BIN)
	SLUICE_BIN=$(abspath $(CHAOS_BIN)) SLUICE_ELASTIC=1 $(GO) test -count=1 -v -timeout 12m \
		-run '^($(ELASTIC_RUN))$$' ./internal/chaos/

elastic-short:
	$(MAKE) elastic ELASTIC_RUN='TestElasticDrain|TestElasticRollingRestart'

# A partition's move against the throttle, and other partitions' produce
# p99 meanwhile (issue 20, BENCHMARKS.md "Moving a partition"): 4 broker
# processes, a 2 GiB partition moved 3 times at 50 MB/s between phases
# without a move. About 10 minutes; not in ci. MOVE_BENCH_BYTES,
# MOVE_BENCH_THROTTLE and the rest: scripts/move-bench.sh.
.PHONY: move-bench
move-bench:
	scripts/move-bench.sh

# The reference: Apache Kafka (KRaft) from its Maven Central jars, for
# side-by-side checks and benchmarks against the Kafka listener.
# KAFKA_REF_NODES=3 starts three; scripts/kafka-ref.sh says the rest.
KAFKA_REF_NODES ?= 1
kafka-ref:
	scripts/kafka-ref.sh start $(KAFKA_REF_NODES)

kafka-ref-stop:
	scripts/kafka-ref.sh stop

# sluice and Apache Kafka side by side under the same franz-go workloads
# (BENCHMARKS.md): KAFKA_VERSUS_NODES=3 for three processes of each, RF 3.
KAFKA_VERSUS_NODES ?= 1
kafka-versus:
	scripts/kafka-versus.sh $(KAFKA_VERSUS_NODES)

ci: lint test fuzz-short chaos-short elastic-short compose-test

# A single-node broker on 127.0.0.1:7092 with its data in ./data.
run: build
	@echo "sluice: starting a broker on 127.0.0.1:7092 (Kafka protocol on 127.0.0.1:9092), data in ./data (Ctrl-C stops it)"
	@echo "  try, in another terminal:"
	@echo "    ./$(BIN) topic create demo --partitions 3"
	@printf '%s\n' "    printf 'hello\\nworld\\n' | ./$(BIN) produce demo"
	@echo "    ./$(BIN) consume demo --from-beginning --max-messages 2"
	@echo "    curl -s http://127.0.0.1:7095/metrics | grep ^sluice_topic"
	@echo "  Kafka clients: kcat -b 127.0.0.1:9092 -L"
	@exec $(BIN) broker --listen 127.0.0.1:7092 --data-dir ./data --kafka-listen 127.0.0.1:9092

# The container image (deploy/Dockerfile, docs/deploy.md): a static binary
# built in the Dockerfile's build stage, in a FROM scratch image.
# GO_IMAGE=local (the default): nothing is pulled or downloaded.
# scripts/image-build.sh makes the build stage's image from the host's Go
# (once per Go version, then reused), vendors the modules into a temporary
# context and builds with no network. Any other GO_IMAGE (golang:1.26-bookworm,
# the Dockerfile's default) is built as docker build -f deploy/Dockerfile .
# would: that image pulled, the modules from the proxy.
DOCKER      ?= docker
IMAGE       ?= sluice:dev
IMAGE_DIR   := bin/image
CA_CERTS    ?= /etc/ssl/certs/ca-certificates.crt
GO_IMAGE    ?= local

image:
ifeq ($(GO_IMAGE),local)
	GO=$(GO) DOCKER=$(DOCKER) IMAGE=$(IMAGE) IMAGE_DIR=$(IMAGE_DIR) CA_CERTS=$(CA_CERTS) \
		VERSION=$(VERSION) COMMIT=$(COMMIT) BUILD_DATE=$(BUILD_DATE) scripts/image-build.sh
else
	$(DOCKER) build -f deploy/Dockerfile --build-arg GO_IMAGE=$(GO_IMAGE) \
		--build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg BUILD_DATE=$(BUILD_DATE) -t $(IMAGE) .
endif

# Build the image and test it for real (scripts/image-test.sh).
# image-test: one container on host networking, produce and consume
# through it with the CLI, SIGTERM and a clean shutdown, its volume read
# back by a new container. compose-test: deploy/compose.yaml's 3 brokers,
# an RF 3 topic, one broker stopped, produce and consume again. Both use
# the docker daemon that answers or, as root, start dockerd (installing
# docker.io from Debian if needed). compose-test is in ci; image-test is
# not (a minute or two more).
# The script builds the image (make image) once a daemon answers.
image-test: build
	IMAGE=$(IMAGE) DOCKER=$(DOCKER) SLUICE_BIN=$(abspath $(BIN)) scripts/image-test.sh single

compose-test:
	IMAGE=$(IMAGE) DOCKER=$(DOCKER) scripts/image-test.sh compose

# Versioned binaries for the release platforms, with SHA-256 checksums, in
# bin/release: static (CGO_ENABLED=0), stamped with VERSION and COMMIT.
# darwin/arm64 is for development on a Mac: where Linux calls fallocate,
# fdatasync and sendfile it uses the portable fallbacks (docs/deploy.md).
RELEASE_DIR       := bin/release
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64 darwin/arm64
release:
	rm -rf $(RELEASE_DIR) && mkdir -p $(RELEASE_DIR)
	for p in $(RELEASE_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' \
			-o $(RELEASE_DIR)/sluice-$(VERSION)-$$os-$$arch ./cmd/sluice || exit 1; \
	done
	cd $(RELEASE_DIR) && sha256sum sluice-* > SHA256SUMS && cat SHA256SUMS

# The console screenshot of docs/operations.md and docs/console.md,
# docs/img/console.png: TestConsoleScreenshot runs a 3-broker in-process
# cluster under a produce and consume load and takes it in a headless
# Chromium (Debian package chromium), about 25 s.
screenshot:
	SLUICE_CONSOLE_PNG=$(abspath docs/img/console.png) $(GO) test -count=1 -run '^TestConsoleScreenshot$$' -v ./httpapi

clean:
	rm -rf bin
