#!/usr/bin/env bash
# Creates (or reuses) target/sdk-venv: the official FunctionGraph SDK from
# PyPI and pytest, as pinned in tests/sdk/requirements.txt. Prints its python.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/sdk-venv
if [ ! -x "$venv/bin/python" ] || ! cmp -s tests/sdk/requirements.txt "$venv/requirements.txt"; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt >&2
    cp tests/sdk/requirements.txt "$venv/requirements.txt"
fi
echo "$PWD/$venv/bin/python"
