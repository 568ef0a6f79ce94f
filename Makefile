# ConvScope: `make run` opens the app, `make test` runs the whole suite headless.
# Both create .venv on first use and reinstall only when pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: run test bench venv clean

venv: $(PY)

# A venv that failed half-way (Debian's python3 without python3-venv leaves .venv/bin/python behind) is
# removed, so the next make starts afresh instead of reusing a venv without pip.
$(PY):
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }
	$(PY) -m pip install -q --upgrade pip || { rm -rf $(VENV); exit 1; }

$(VENV)/.installed-run: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[export]"  # Pillow: animations exported as GIF too
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[test,export]"
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	@if [ -z "$$QT_QPA_PLATFORM" ] || [ "$$QT_QPA_PLATFORM" = xcb ]; then $(PY) -m app.qt_deps; fi
	$(PY) -m app

test: $(VENV)/.installed-test
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

bench: $(VENV)/.installed-run
	$(PY) -m engine bench

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
