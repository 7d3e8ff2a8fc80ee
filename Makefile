# baepo: the two set-up commands are `make demo` and `make test` (see README).
UV_VERSION := 0.13.9
VENV := .venv
UV := $(VENV)-tools/bin/uv

.PHONY: demo test test-busy check bench deps web system-deps docs clean

$(UV):
	python3 -m venv $(VENV)-tools
	$(VENV)-tools/bin/pip install -q uv==$(UV_VERSION)

# Python dependencies, exactly as pinned in uv.lock, compiled ahead so the CLI starts fast.
deps: $(UV)
	$(UV) sync --frozen --quiet --compile-bytecode
	$(VENV)/bin/python -m compileall -q src >/dev/null

## web: the dashboard's JavaScript libraries (htmx, its SSE extension, uPlot), exactly as pinned
## in web/package-lock.json, copied into the package's static folder (npm from Debian if missing)
WEB_VENDOR := src/baepo/web/static/vendor
web: $(WEB_VENDOR)/.fetched
$(WEB_VENDOR)/.fetched: web/package.json web/package-lock.json
	command -v npm >/dev/null || scripts/install-system-deps web
	cd web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	cp web/node_modules/htmx.org/dist/htmx.min.js web/node_modules/htmx-ext-sse/dist/sse.min.js \
	   web/node_modules/uplot/dist/uPlot.iife.min.js web/node_modules/uplot/dist/uPlot.min.css \
	   $(WEB_VENDOR)/
	touch $@

## demo: install baepo and run the sample app through a release (deploy, roll under load, undo)
demo: deps web
	$(VENV)/bin/baepo demo

## system-deps: the Debian packages the tests use (PostgreSQL), installed when missing
system-deps:
	scripts/install-system-deps test

## test: install everything the tests need, then format, lint, types, import layers, all tests
test: system-deps deps web
	scripts/check

## test-busy: the pytest suite with `stress-ng --cpu <cores>` running beside it (stopped after),
## as on a busy CI machine; a test that fails only here depends on speed
test-busy: system-deps deps web
	scripts/check-under-load

## check: the same checks without installing anything
check:
	scripts/check

## bench: router, deploy, rollback and judge benchmarks (installs HAProxy, nginx and wrk when missing)
bench: deps
	scripts/install-system-deps bench
	$(VENV)/bin/python bench/router.py
	$(VENV)/bin/python bench/deploy.py
	$(VENV)/bin/python bench/rollback.py
	$(VENV)/bin/python bench/judge.py

## docs: regenerate docs/spec.md from the models
docs: deps
	scripts/gen-docs

clean:
	rm -rf $(VENV) $(VENV)-tools .pytest_cache .mypy_cache .ruff_cache
