#!/usr/bin/env bash
# Run here, before bench/gpu_check.sh goes to the device: copies the Flax+Optax peers into
# .gpu/peers (../shared does not travel; .gitignore ignores .gpu/), for the device tool's
# `carry`.
set -eu
cd "$(dirname "$0")/.."
mkdir -p .gpu/peers
cp ../shared/bench/peers/*.py .gpu/peers/
du -sh .gpu
