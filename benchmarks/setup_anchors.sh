#!/usr/bin/env bash
# Virtual environments for the Paddle2ONNX anchors of benchmarks/paddle_resnet50.py
# (each needs paddlepaddle; kept apart from the project's own environment).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
for version in 2.1.0 1.3.1; do
  venv="$here/.venv-p2o-$version"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "paddle2onnx==$version" "paddlepaddle==3.3.1" packaging
done
