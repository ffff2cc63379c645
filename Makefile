# The project's commands (each is a script under .ci/; see README.md).
#   make demo       a demo JupyterHub on a Docker engine (fakedocker when none answers)
#   make demo-fake  the same demo on fakedocker: Python packages and the proxy only
#   make test       the whole test suite (sets the machine up for it first)
#   make setup      only the set-up of `make test`; `make plan` shows what it would do
# Arguments: make test ARGS='tests/contract -k fake'; make demo CHANGE_ENGINE=1
# (let the demo build its image on an engine it did not start).
SHELL := bash
ARGS ?=
CHANGE_ENGINE ?= 0

.PHONY: help demo demo-fake test setup plan
help:
	@sed -n '2,7p' Makefile | sed 's/^# \{0,1\}//'

demo:
	DOCKERSPAWNER_CHANGE_ENGINE=$(CHANGE_ENGINE) DEMO_ENGINE=docker bash .ci/hub $(ARGS)

demo-fake:
	DEMO_ENGINE=fake bash .ci/hub $(ARGS)

test:
	bash .ci/test $(ARGS)

setup:
	bash .ci/setup all >/dev/null

plan:
	@bash .ci/setup --plan $(ARGS)
