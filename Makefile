# The README's test command is `make test`; .ci/run calls it.
GO ?= go

.PHONY: test test-short test-e2e bench demo lint build screenshots

test:
	$(GO) test -race -count=1 ./...

# Multi-process suites (fault injection, secrets, Cluster/Sentinel): they
# build the commands and start their own redis-server processes.
test-e2e:
	$(GO) test -tags e2e -count=1 -timeout 20m ./e2e/

test-short:
	$(GO) test -short -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

demo:
	$(GO) run ./cmd/demo

lint:
	@out=$$(gofmt -l . ); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

build:
	$(GO) build -o bin/ ./cmd/...

# Screenshots of the pages at 1,280 px, taken by the browser tests (needs chromium).
screenshots:
	$(GO) test -count=1 -run TestBrowser ./internal/web/ -args -screenshots=$(CURDIR)/docs/screenshots
