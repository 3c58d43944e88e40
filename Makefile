# maildesk: `make run` starts the daemon on the embedded default; `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= config/maildesk.example.toml

.PHONY: run test install bench clean

$(BIN)/maildesk: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/maildesk

run: install
	$(BIN)/maildesk --config $(CONFIG) db upgrade
	$(BIN)/maildesk --config $(CONFIG) serve

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var
