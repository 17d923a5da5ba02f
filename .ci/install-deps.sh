#!/usr/bin/env bash
# Installs what libqat needs to build and test, from Debian 12 packages only.
# Usage: .ci/install-deps.sh [EXTRA_PACKAGE ...]
set -euo pipefail

packages=(
  cmake g++ make pkg-config python3
  libonnx-dev libprotobuf-dev protobuf-compiler
  libabsl-dev libeigen3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libonnx-testdata zlib1g-dev dataset-fashion-mnist
  clang libclang-rt-14-dev
  # the real-model tests (tests/models): PyTorch exports, ONNX-helper models
  python3-torch python3-torchvision libopenblas0-pthread python3-onnx python3-numpy
  # the Python package (capi/python) and its pytest suite
  python3-setuptools python3-venv python3-pytest
  # data-parallel training (QAT_WITH_MPI) and its ctests (label mpi)
  libopenmpi-dev openmpi-bin
  "$@"
)

sudo=()
if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
    --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present"
fi
