# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LISTEN ?= :9847
SELECTION_LOG ?= logs/selection_metrics.csv
PUSHGATEWAY_URL ?= http://127.0.0.1:9091
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SYSTEM_TOOLS := prometheus promtool prometheus-pushgateway amtool cc openssl docker-compose

.PHONY: proto install kernel wheel fuzz run test lint perf bench bench-push system-deps dashboard-types docs dashboards rules kubernetes lock fleet fleet-deps fleet-check clean

# The installer's chatter goes to a log, shown only when the install fails: `make run` should show
# orchex's own lines, not pip's.
$(STAMP): pyproject.toml
	@echo "installing orchex into $(VENV) (log: $(VENV)/install.log)"
	@$(PYTHON) -m venv $(VENV)
	@{ $(BIN)/pip install --upgrade pip && \
	   $(BIN)/pip install -e '.[dev]' && \
	   $(BIN)/python -m compileall -q exporter; } > $(VENV)/install.log 2>&1 \
	  || { tail -n 30 $(VENV)/install.log; echo "install failed: see $(VENV)/install.log"; exit 1; }
	@touch $@

install: $(STAMP)

# The selection-log kernel (exporter/selectionlog/_fold.c), built again when its source is newer than
# its module or the module is missing (a compiler installed by system-deps after the first install).
KERNELS := exporter/selectionlog/_fold.c
kernel: install
	@for c in $(KERNELS); do so=$$(ls $${c%.c}*.so 2>/dev/null | head -n 1); \
	  if [ -z "$$so" ] || [ $$c -nt "$$so" ]; then stale=1; fi; done; \
	if [ -n "$$stale" ]; then $(BIN)/pip install --no-deps -e . >> $(VENV)/install.log 2>&1 || true; fi

# The kubelet's pod-resources client, generated from the vendored exporter/kubernetes/api.proto.
proto: install
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. exporter/kubernetes/api.proto

# The wheel the container image installs (deploy/Dockerfile builds the same), into dist/; it must
# carry the C kernel: without a compiler this fails, where a source install quietly goes without.
wheel: install
	@rm -rf dist && $(BIN)/pip wheel -q --no-deps -w dist . >> $(VENV)/install.log 2>&1 \
	  || { tail -n 20 $(VENV)/install.log; echo "make wheel: the build failed"; exit 1; }
	@$(BIN)/python -c "import glob, zipfile, sys; w = glob.glob('dist/*.whl')[0]; \
	  sys.exit(0 if any('selectionlog/_fold' in n for n in zipfile.ZipFile(w).namelist()) \
	  else f'make wheel: {w} has no C kernel (exporter/selectionlog/_fold.c): is gcc installed?')"
	@ls dist/*.whl

# The exporter on the embedded default (NVML when a driver answers, else the simulated fleet) plus
# demo routing traffic through the real selector, written to the log the exporter follows.
run: install
	@mkdir -p $(dir $(SELECTION_LOG))
	@$(BIN)/orchex demo --log $(SELECTION_LOG) & demo=$$!; \
	trap 'kill $$demo 2>/dev/null' EXIT INT TERM; \
	$(BIN)/orchex serve --web.listen-address=$(LISTEN) --gpu-backend=auto --selection-log=$(SELECTION_LOG)

# Debian packages the tests run: Prometheus, promtool, the Pushgateway and Alertmanager (started live),
# gcc (builds the fake NVML), openssl (test certificates), docker-compose (checks deploy/compose.yaml).
system-deps:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends prometheus prometheus-pushgateway prometheus-alertmanager gcc libc6-dev openssl \
	    docker-compose >/dev/null; \
	fi

# Grafana's dashboard types (@grafana/schema) and TypeScript, pinned by the lock file, for the
# type-check of the dashboards in tests/test_grafana.py.
DASHBOARD_TYPES := grafana/typecheck/node_modules/.package-lock.json
$(DASHBOARD_TYPES): grafana/typecheck/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed to type-check the dashboards (apt-get install npm)"; exit 1; }
	@cd grafana/typecheck && npm ci --no-audit --no-fund --silent
	@touch $@

dashboard-types: $(DASHBOARD_TYPES)

# Lint first: a reviewer reads the types and the style before the behaviour; a short fuzz last.
test: lint system-deps dashboard-types kernel
	$(BIN)/python -m pytest -q
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=20

# The C fold under AddressSanitizer and UndefinedBehaviorSanitizer, held to the Python path on
# generated hostile logs for FUZZ_SECONDS (tools/fuzz.py). Python itself leaks by design: leaks are
# not what this looks for.
FUZZ_SECONDS ?= 300
fuzz: install system-deps
	LD_PRELOAD=$$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1 $(BIN)/python tools/fuzz.py $(FUZZ_SECONDS)

lint: install
	$(BIN)/ruff check exporter tests perf tools prometheus grafana
	$(BIN)/mypy --check-untyped-defs exporter

# Byte-compiled first, as a wheel install would be: an editable install is not, and with
# PYTHONDONTWRITEBYTECODE set every start would compile the package again.
perf: install system-deps fleet-deps kernel
	$(BIN)/pip install -q -e '.[perf]'
	$(BIN)/python -m compileall -q exporter perf
	$(BIN)/python -m perf

bench: install
	$(BIN)/orchex bench

bench-push: install
	$(BIN)/orchex bench --push $(PUSHGATEWAY_URL)

# The image's hash-pinned dependencies, from pyproject.toml.
lock: install
	$(BIN)/pip install -q pip-tools
	$(BIN)/pip-compile -q --generate-hashes --strip-extras --no-header --no-emit-index-url --no-emit-find-links \
	  --extra kubernetes -o deploy/requirements.lock pyproject.toml
	@{ echo "# Runtime dependencies of the image (with the kubernetes extra), pinned with hashes: make lock."; \
	   echo "# The Dockerfile installs exactly these."; cat deploy/requirements.lock; } > deploy/requirements.lock.tmp \
	  && mv deploy/requirements.lock.tmp deploy/requirements.lock

# A fleet on this machine: N exporters, Prometheus in agent mode, VictoriaMetrics (Debian's packages).
HOSTS ?= 20
fleet-deps: system-deps
	@command -v victoria-metrics >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  $(SUDO) apt-get install -y -qq --no-install-recommends victoria-metrics >/dev/null; }

fleet: install fleet-deps
	$(BIN)/python tools/fleet.py --hosts $(HOSTS)

fleet-check: install fleet-deps
	$(BIN)/python tools/fleet.py --hosts $(HOSTS) --check 75

# The alert rules from exporter/policy.py, then the PrometheusRule that carries them.
rules: install
	$(BIN)/python prometheus/generate.py
	$(BIN)/python tools/kubernetes_rules.py --write

kubernetes: install
	$(BIN)/python tools/kubernetes_rules.py --write

dashboards: install
	$(BIN)/python grafana/generate.py

docs: install
	$(BIN)/python tools/metrics_reference.py --write

clean:
	rm -rf $(VENV) dist tests/.build .pytest_cache grafana/typecheck/node_modules grafana/typecheck/build $(KERNELS:.c=*.so)
