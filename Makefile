# CXR Lens: `make run` starts the app, `make test` runs every test.
# Both create .venv (Python 3.11) and install requirements.txt on first use;
# later runs skip the install until requirements.txt changes.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
REQ_HASH := $(shell sha256sum requirements.txt | cut -c1-16)
STAMP := $(VENV)/.installed-$(REQ_HASH)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
PORT ?= 8501

.PHONY: install run test test-fast browser-deps pacs-deps pacs lint models candidate clean serve

$(STAMP): requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

# Debian's Chromium for the Playwright end-to-end test (no browser download is possible here).
browser-deps:
	@test -x /usr/bin/chromium || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null)

# Debian's Orthanc, its DICOMweb plugin and dicom3tools (dciodvfy) for the PACS tests and `make pacs`.
ORTHANC_PLUGIN := /usr/share/orthanc/plugins/libOrthancDicomWeb.so
pacs-deps:
	@test -x /usr/sbin/Orthanc -a -f $(ORTHANC_PLUGIN) -a -x /usr/bin/dciodvfy || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq orthanc orthanc-dicomweb dicom3tools >/dev/null)

# A local Orthanc (loopback only) with demo studies, storage in $(PACS_DIR); Ctrl-C stops it.
# Prints the explorer's URL (http://127.0.0.1:$(PACS_PORT)/app/explorer.html) and where the password is kept.
PACS_PORT ?= 8042
PACS_DIR ?= .pacs
pacs: install pacs-deps
	$(BIN)/python -m cxrlib.pacs serve --port $(PACS_PORT) --dir $(PACS_DIR)

run: install
	$(BIN)/streamlit run app.py --server.headless true --server.port $(PORT) --browser.gatherUsageStats false

# The shared model on Ray Serve (Ctrl-C stops it); then `CXR_MODEL_SERVER=http://127.0.0.1:$(SERVE_PORT) make run`.
SERVE_PORT ?= 8000
serve: install
	$(BIN)/python -m cxrlib.serve --port $(SERVE_PORT)

test: install browser-deps pacs-deps
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not browser and not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The classifier's two calibrations (temperature, then the 9 test-time views), shared by the
# committed model and a candidate so that both are calibrated the same way.
calibrate = $(BIN)/python -m cxrlib.train.calibrate --model $(1) --data ../shared/cxr

# Re-train every committed model (slow: see README for times). The leave-one-source-out runs
# take the classifier's own epochs (TrainConfig.epochs), so they are its full recipe (loso_full).
models: install
	$(BIN)/python -m cxrlib.train.segmenter train --data ../shared/lungs --out models/ --epochs 16
	$(BIN)/python -m cxrlib.train --data ../shared/cxr --out models/
	$(call calibrate,models/cxr_classifier.keras)
	$(call calibrate,models/cxr_classifier.keras) --views
	$(BIN)/python -m cxrlib.evaluate metrics --record --data ../shared/cxr
	$(BIN)/python -m cxrlib.evaluate audit --data ../shared/cxr --split test --ablate --explain --shortcuts --record --bootstrap 200
	$(BIN)/python -m cxrlib.evaluate methods --data ../shared/cxr --split test --images 120 --record
	$(BIN)/python -m cxrlib.evaluate external ../shared/lungs --record
	$(BIN)/python -m cxrlib.evaluate loso nih,quex --data ../shared/cxr --epochs 20 --steps 0 --views --record
	$(BIN)/python -m cxrlib.train.gate fit --data ../shared/cxr --lungs ../shared/lungs --out models/ood.npz

# A trained candidate (python -m cxrlib.train --out $(CANDIDATE) ...) calibrated as the committed
# model is and scored on the validation split only, as the app predicts: $(CANDIDATE)/val.json
# (metrics) and $(CANDIDATE)/audit_val.json (lungs erased, resolution, source probe).
CANDIDATE_MODEL = $(CANDIDATE)/cxr_classifier.keras
candidate: install
	@test -f "$(CANDIDATE_MODEL)" || (echo "usage: make candidate CANDIDATE=<folder with cxr_classifier.keras>"; exit 2)
	$(call calibrate,$(CANDIDATE_MODEL))
	$(call calibrate,$(CANDIDATE_MODEL)) --views
	$(BIN)/python -m cxrlib.evaluate metrics --model $(CANDIDATE_MODEL) --manifest ../shared/cxr/manifest.csv --split val --bootstrap 1000 --json $(CANDIDATE)/val.json
	$(BIN)/python -m cxrlib.evaluate audit --model $(CANDIDATE_MODEL) --data ../shared/cxr --split val --ablate --shortcuts --json $(CANDIDATE)/audit_val.json

clean:
	rm -rf $(VENV) artifacts .pytest_cache
