# Every target creates .venv (and installs cspdesk with its dev tools) when it is missing or stale.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint venv clean messages

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cspdesk demo

test: $(STAMP)
	bash scripts/test.sh

bench: $(STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check cspdesk tests bench
	$(BIN)/ruff format --check cspdesk tests bench
	$(BIN)/mypy cspdesk
	$(BIN)/cspdesk makemigrations --check --dry-run
	$(BIN)/cspdesk check

clean:
	rm -rf $(VENV) var/static

# Extract every translatable string into cspdesk/locale, then compile; translate the new entries in between.
messages: $(STAMP)
	$(BIN)/cspdesk makemessages -l it -l sv -l pt_PT -l hu --ignore 'var/*' --ignore 'tests/*' --ignore 'bench/*' --ignore 'node_modules/*'
	cd cspdesk && ../$(BIN)/cspdesk compilemessages
