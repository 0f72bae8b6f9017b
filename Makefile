# scaletest: run `make help` for the targets.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo

## help: list the targets
.PHONY: help
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed 's/^## //' | column -t -s ':'

## upstream: build the pinned kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok, kine, helm, Karpenter's kwok provider (Go module proxy) and install Prometheus (apt)
.PHONY: upstream
upstream:
	scripts/upstream.sh build

## build: build the Rust workspace
.PHONY: build
build:
	$(CARGO) build --workspace --bins

## run: set everything up and run the main job (the smoke profile end to end, locally)
.PHONY: run
run: upstream build
	target/debug/scaletest-runner run --profile profiles/smoke.yaml

## demo: one simulated cluster with a full kwok Node, shown with kubectl and torn down
.PHONY: demo
demo: upstream build
	scripts/demo.sh

## validate: check every profile
.PHONY: validate
validate: build
	target/debug/scaletest-runner validate profiles

## test: format and lint checks, then every unit and integration test (real control planes)
# (--locked as in the image build: a stale Cargo.lock fails here first)
.PHONY: test
test: upstream
	$(CARGO) fmt --all -- --check
	python3 -m py_compile scripts/*.py
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) build --locked --workspace --bins
	$(CARGO) test --workspace

## bench: side by side with the peers into results/bench/ (load-driver vs kube-burner, pod-shim vs kube-scheduler, harness overhead, clusters per machine), plus cold start and harness rates into results/; QUICK=1 for the quick size
.PHONY: bench
bench: upstream
	scripts/upstream.sh bench
	$(CARGO) build --release --workspace --bins
	scripts/bench.py $(if $(QUICK),--quick)
	$(if $(QUICK),,scripts/bench-cluster-start.py)
	$(if $(QUICK),,scripts/bench-harness.py)

## crds: regenerate crds/*.yaml from the Rust types
.PHONY: crds
crds:
	UPDATE_CRDS=1 $(CARGO) test -p scaletest-core --test crds

## scaletest-images: the combined image, the reference SUT image (Docker engine: docker build; none: daemonless, plus the chart's Prometheus, OCI/docker archives in target/images/); IMAGES="harness sut prometheus karpenter" to choose
HARNESS_IMAGE ?= scaletest-harness:dev
SUT_IMAGE ?= scaletest-sut:dev
DOCKER ?= docker
.PHONY: scaletest-images
scaletest-images:
	HARNESS_IMAGE=$(HARNESS_IMAGE) SUT_IMAGE=$(SUT_IMAGE) DOCKER=$(DOCKER) scripts/images.sh build $(IMAGES)

## realnode: bring up a real single-node Kubernetes here (kubelet + containerd, no Docker): scripts/realnode.sh up; `scripts/realnode.sh down` removes it
.PHONY: realnode
realnode: upstream
	scripts/realnode.sh up $(wildcard target/images/*.oci.tar)

## fidelity: the same Pods on the real node's kubelet and on a simulated cluster's kwok (fast and faithful), apiserver requests and watches side by side into results/fidelity.md (+ .json); needs root, holds the real-node lock
.PHONY: fidelity
fidelity: upstream build
	scripts/fidelity.py

## fidelity-cost: CPU and memory of one simulated cluster in kwok.mode fast and faithful (release build) into results/bench/fidelity-cost.md
.PHONY: fidelity-cost
fidelity-cost: upstream
	$(CARGO) build --release -p scaletest-cluster -p scaletest-node-creator --bins
	scripts/fidelity.py --cost

## kube-e2e: the kube target end to end on that real node: images (daemonless), node up, smoke with --target kube, node down (not part of `make test`)
.PHONY: kube-e2e
kube-e2e: upstream
	scripts/kube-e2e.sh

## chart-lint: lint the Dockerfiles with hadolint (pinned, pip-installed by scripts/hadolint.sh), helm lint and helm template the chart for every profile
.PHONY: chart-lint
chart-lint:
	scripts/chart-lint.sh
