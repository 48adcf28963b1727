# The README's test command is `make test`; .ci/run calls it.
GO ?= go

.PHONY: test test-short test-e2e bench demo lint build install screenshots

# The tests need a Redis at 127.0.0.1:6379: scripts/with-redis uses the one
# that answers, or starts a private redis-server for the run, or stops at
# once with one line saying how to get one.
test:
	scripts/with-redis $(GO) test -race -count=1 ./...

# Multi-process suites (fault injection, secrets, Cluster/Sentinel): they
# build the commands and start their own redis-server processes.
test-e2e:
	$(GO) test -tags e2e -count=1 -timeout 20m ./e2e/

test-short:
	scripts/with-redis $(GO) test -short -count=1 ./...

bench:
	scripts/with-redis $(GO) test -run '^$$' -bench . -benchtime 1x ./...

# The demo runs as a binary, not through `go run`, so that Ctrl-C ends it
# with its own exit status (0) rather than go run's. ARGS passes flags:
# make demo ARGS='--listen 127.0.0.1:8081'.
demo:
	@$(GO) build -o bin/demo ./cmd/demo
	@./bin/demo $(ARGS)

lint:
	@out=$$(gofmt -l . ); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Every command (worker, enqueue, b24sim, demo, bench) into bin/.
build:
	$(GO) build -o bin/ ./cmd/...

# Every command into $(go env GOBIN), or $(go env GOPATH)/bin.
install:
	$(GO) install ./cmd/...

# Screenshots of the pages at 1,280 px, taken by the browser tests (needs chromium).
screenshots:
	$(GO) test -count=1 -run TestBrowser ./internal/web/ -args -screenshots=$(CURDIR)/docs/screenshots
