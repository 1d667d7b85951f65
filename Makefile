# Burro's entry point: people and CI run the same targets. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

# uv from PATH, else the one pip installs (bootstrapped by `make install`).
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: install
install: ## Install Burro, its local trainer (torch, ~6 GB) and its tools: uv, then the lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --locked --python 3.11 --extra trainer

.PHONY: dev
dev: install ## Run everything locally: Redis, API, worker, and the sandbox without OPENAI_API_KEY
	$(UV) run burro dev

.PHONY: test
test: install lint typecheck browser ## Lint, type-check and run every test (all tiers)
	$(UV) run pytest

.PHONY: test-fast
test-fast: ## The unit tier: no server, no process, no network (seconds)
	$(UV) run pytest tests/unit

.PHONY: test-quick
test-quick: ## Every test but the slow, crash and browser ones
	$(UV) run pytest -m "not slow and not crash and not browser"

.PHONY: browser
browser: ## Headless Chromium for the browser tests: Debian's chromium, with apt-get as root
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then \
		echo "chromium is installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q chromium >/dev/null 2>&1 \
			|| { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } \
			|| echo "chromium could not be installed: the browser tests will skip"; \
	else \
		echo "chromium is missing and installing it needs root and apt-get: the browser tests will skip"; \
	fi

.PHONY: lint
lint: ## Ruff: format check and lint
	$(UV) run ruff format --check .
	$(UV) run ruff check .

.PHONY: format
format: ## Format and fix what ruff can
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

.PHONY: typecheck
typecheck: ## mypy, strict
	$(UV) run mypy

.PHONY: openapi
openapi: ## Regenerate openapi/openapi.json from the code
	$(UV) run burro openapi

.PHONY: bench-validate
bench-validate: install ## Benchmark the dataset checks against the cookbook and bare tokenizing
	$(UV) run python bench/validate.py

.PHONY: bench-tokens
bench-tokens: install ## Benchmark counting a dataset with tiktoken against a local model's own tokenizer
	$(UV) run python bench/local_tokens.py

.PHONY: bench-chat
bench-chat: install ## Benchmark the chat path: direct to an upstream vs through Burro
	$(UV) run python bench/chat.py

.PHONY: bench-jobs
bench-jobs: install ## Benchmark one poll pass as the number of active jobs grows
	$(UV) run python bench/jobs.py

.PHONY: bench-webhooks
bench-webhooks: install ## Benchmark webhook delivery when many jobs finish at once
	$(UV) run python bench/webhooks.py

.PHONY: bench-openai-compat
bench-openai-compat: install ## Benchmark OpenAI's job list view against Burro's own on the same jobs
	$(UV) run python bench/openai_compat.py

.PHONY: bench-load
bench-load: install ## Mixed traffic from many tenants: API, worker and sandbox as processes
	$(UV) run python bench/load.py

.PHONY: bench-upload-memory
bench-upload-memory: install ## API peak memory during 4 concurrent uploads of 50 MB single-line files
	$(UV) run python bench/upload_memory.py

.PHONY: bench-train
bench-train: install ## Benchmark the local trainer against a plain PEFT/TRL script, and its model server
	$(UV) run python bench/train.py
