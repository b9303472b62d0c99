#!/usr/bin/env bash
# Renders deploy/kubernetes (and its in-flight autoscaling variant) with
# `kubectl kustomize` and validates every object against the Kubernetes
# schemas, offline (kubernetes-validate from PyPI, in the test venv). Installs
# the distribution's kubectl (kubernetes-client) when there is none.
# The rendered files stay in target/kubernetes/ (tests/sdk/test_kubernetes.py
# reads them).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v kubectl >/dev/null; then
  echo "check-kubernetes.sh: installing the distribution's kubectl (kubernetes-client)" >&2
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq kubernetes-client >/dev/null
fi
python=$(./scripts/sdk-venv.sh)
out=target/kubernetes
mkdir -p "$out"
kubectl kustomize deploy/kubernetes > "$out/fnhost.yaml"
kubectl kustomize deploy/kubernetes/autoscaling/in-flight > "$out/fnhost-in-flight.yaml"
for f in "$out/fnhost.yaml" "$out/fnhost-in-flight.yaml"; do
  "$python" -m kubernetes_validate --strict --quiet --kubernetes-version 1.33.0 "$f"
  echo "$f: every object valid for Kubernetes 1.33"
done
