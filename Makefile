# iotpipe developer commands. Only Python >= 3.11 and make are needed: each target builds the
# virtualenv it uses (.venv), reinstalling when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.PHONY: demo test lint bench bench-smoke check clean help beam-env

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "iotpipe needs Python >= 3.11, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@touch $@

$(VENV)/.installed-run: $(VENV)/.python pyproject.toml
	$(PY) -m pip install --quiet -e '.[serve]'
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.python pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed-run

# Apache Beam pins protobuf, grpcio, numpy and more: the Beam replay (iotpipe[beam]) gets an
# environment of its own, used only by tests/beam and the Beam benchmark, which run its
# `iotpipe replay --runner direct` (about 30 s to build from the package index's cache).
BEAM_VENV ?= .venv-beam

$(BEAM_VENV)/.installed: $(VENV)/.python pyproject.toml
	$(PYTHON) -m venv $(BEAM_VENV)
	$(BEAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BEAM_VENV)/bin/python -m pip install --quiet -e '.[beam,aws,gcp]'
	@touch $@

beam-env: $(BEAM_VENV)/.installed  ## the Beam replay's own virtualenv (.venv-beam; make test builds it)

DEMO_ARGS ?=

demo: $(VENV)/.installed-run  ## the main job: a simulated fleet through the local runtime, served live (Ctrl-C stops)
	$(BIN)/iotpipe demo $(DEMO_ARGS)

test: $(VENV)/.installed-dev $(BEAM_VENV)/.installed  ## install what the tests need and run the whole suite
	$(BIN)/pytest

lint: $(VENV)/.installed-dev  ## ruff, mypy (strict on the core) and the import-linter contracts
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(VENV)/.installed-dev $(BEAM_VENV)/.installed  ## every benchmark at full size, one table (~30 minutes; needs the GCP emulators)
	$(PY) benchmarks/suite.py

bench-smoke: $(VENV)/.installed-dev $(BEAM_VENV)/.installed  ## every benchmark at a tiny size, so none can rot (~1 minute)
	$(PY) benchmarks/suite.py --smoke

check: test lint bench-smoke  ## everything CI runs

PACKAGE_ARGS ?=

.PHONY: package-aws package-gcp
package-aws: $(VENV)/.installed-run  ## reproducible Lambda zips (code, dependency layer, manifest) in dist/aws
	$(BIN)/iotpipe package aws $(PACKAGE_ARGS)

package-gcp: $(VENV)/.installed-run  ## the reproducible Cloud Functions source archive in dist/gcp
	$(BIN)/iotpipe package gcp $(PACKAGE_ARGS)

# Deploy to the AWS account of your current credentials (deploy/aws/README.md). Settings go in
# deploy/aws/terraform.tfvars; TF_ARGS passes more terraform arguments. Terraform asks before
# changing anything. The API key is made once and kept in deploy/aws/.api-key (git-ignored).
.PHONY: deploy-aws destroy-aws
deploy-aws: $(VENV)/.installed-run  ## build the Lambda zips, terraform apply deploy/aws, print the API URL and a first curl
	@command -v terraform >/dev/null || { echo "deploy-aws needs terraform >= 1.6 on PATH" >&2; exit 1; }
	$(BIN)/iotpipe package aws --out dist/aws
	@test -s deploy/aws/.api-key || (umask 077; $(PY) -c 'import secrets; print(secrets.token_urlsafe(32))' > deploy/aws/.api-key)
	terraform -chdir=deploy/aws init -input=false
	TF_VAR_api_keys="[\"$$(cat deploy/aws/.api-key)\"]" terraform -chdir=deploy/aws apply $(TF_ARGS)
	@url=$$(terraform -chdir=deploy/aws output -raw api_url); key=$$(cat deploy/aws/.api-key); \
	echo; echo "API and dashboard: $$url   (API key: deploy/aws/.api-key)"; echo; \
	echo "curl -H 'Authorization: Bearer $$key' -H 'content-type: application/json' \\"; \
	echo "  -d '{\"device_id\":\"iot-sensor-001\",\"timestamp\":\"$$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"temperature\":25.5}' \\"; \
	echo "  $${url}v1/readings"

destroy-aws: $(VENV)/.installed-run  ## delete the deployed stack, its table and archive included (asks twice)
	@command -v terraform >/dev/null || { echo "destroy-aws needs terraform >= 1.6 on PATH" >&2; exit 1; }
	test -s dist/aws/iotpipe-code.zip || $(BIN)/iotpipe package aws --out dist/aws  # the configuration hashes the zips
	terraform -chdir=deploy/aws apply -var protect_data=false -target=aws_dynamodb_table.windows -target=aws_s3_bucket.archive $(TF_ARGS)
	terraform -chdir=deploy/aws destroy -var protect_data=false $(TF_ARGS)

# Deploy to the Google Cloud project named in deploy/gcp/terraform.tfvars (project = "...") with
# your Application Default Credentials (deploy/gcp/README.md). Not run by the tests: nothing in
# deploy/gcp has been applied to real GCP from this repository. The API key is made once and
# kept in deploy/gcp/.api-key (git-ignored).
.PHONY: deploy-gcp destroy-gcp
deploy-gcp: $(VENV)/.installed-run  ## build the source archive, terraform apply deploy/gcp, print the URLs and a first curl
	@command -v terraform >/dev/null || { echo "deploy-gcp needs terraform >= 1.6 on PATH" >&2; exit 1; }
	$(BIN)/iotpipe package gcp --out dist/gcp
	@test -s deploy/gcp/.api-key || (umask 077; $(PY) -c 'import secrets; print(secrets.token_urlsafe(32))' > deploy/gcp/.api-key)
	terraform -chdir=deploy/gcp init -input=false
	TF_VAR_api_keys="[\"$$(cat deploy/gcp/.api-key)\"]" terraform -chdir=deploy/gcp apply $(TF_ARGS)
	@ingest=$$(terraform -chdir=deploy/gcp output -raw ingest_url); api=$$(terraform -chdir=deploy/gcp output -raw api_url); \
	key=$$(cat deploy/gcp/.api-key); \
	echo; echo "ingest: $$ingest/v1/readings   API and dashboard: $$api/   (API key: deploy/gcp/.api-key)"; echo; \
	echo "curl -H 'Authorization: Bearer $$key' -H 'content-type: application/json' \\"; \
	echo "  -d '{\"device_id\":\"iot-sensor-001\",\"timestamp\":\"$$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"temperature\":25.5}' \\"; \
	echo "  $$ingest/v1/readings"; \
	echo "curl -H 'Authorization: Bearer $$key' $$api/v1/devices"

destroy-gcp: $(VENV)/.installed-run  ## delete the deployed stack, its database and archive included (asks twice)
	@command -v terraform >/dev/null || { echo "destroy-gcp needs terraform >= 1.6 on PATH" >&2; exit 1; }
	test -s dist/gcp/iotpipe-gcf-source.zip || $(BIN)/iotpipe package gcp --out dist/gcp  # the configuration hashes the archive
	terraform -chdir=deploy/gcp apply -var protect_data=false -target=google_firestore_database.store -target=google_storage_bucket.archive $(TF_ARGS)
	terraform -chdir=deploy/gcp destroy -var protect_data=false $(TF_ARGS)

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) $(BEAM_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
