# ConvScope: `make run` opens the app, `make test` runs the whole suite headless.
# Both create .venv on first use and reinstall only when pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: run test bench venv clean

venv: $(PY)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[test,export]"
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	@if [ -z "$$QT_QPA_PLATFORM" ] || [ "$$QT_QPA_PLATFORM" = xcb ]; then $(PY) -m app.qt_deps; fi
	$(PY) -m app

# A crash of the test process itself (killed by a signal, exit >= 128) is retried once, loudly: a known,
# intermittent Qt teardown abort ("pure virtual method called" while pytest-qt processes events between
# tests) is still open (see README, Known issues). Test failures (exit 1) are never retried.
test: $(VENV)/.installed-test
	@QT_QPA_PLATFORM=offscreen $(PY) -m pytest || { rc=$$?; \
	  if [ $$rc -ge 128 ]; then \
	    echo "WARNING: pytest crashed (exit $$rc), the known Qt teardown abort; running the suite once more"; \
	    QT_QPA_PLATFORM=offscreen $(PY) -m pytest; \
	  else exit $$rc; fi; }

bench: $(VENV)/.installed-run
	$(PY) -m engine bench

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
