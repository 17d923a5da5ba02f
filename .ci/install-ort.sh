#!/usr/bin/env bash
# Installs ONNX Runtime for the interop tests: node and npm from Debian when
# missing, then onnxruntime-node from the npm registry into .deps/ort (with
# --ignore-scripts: its CPU library ships inside the package).  A failure is
# reported and the interop tests then skip, saying why.
set -uo pipefail
cd "$(dirname "$0")/.."
version=1.30.0
dest=.deps/ort
if [ -f "$dest/node_modules/onnxruntime-node/package.json" ] &&
   grep -q "\"version\": \"$version\"" "$dest/node_modules/onnxruntime-node/package.json"; then
  echo "install-ort: onnxruntime-node $version present"
  exit 0
fi
if ! command -v npm > /dev/null; then
  sudo=()
  if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
      nodejs npm || { echo "install-ort: could not install node and npm"; exit 0; }
fi
mkdir -p "$dest"
if npm install --prefix "$dest" --ignore-scripts --no-audit --no-fund --loglevel=error \
     "onnxruntime-node@$version"; then
  echo "install-ort: onnxruntime-node $version installed in $dest"
else
  echo "install-ort: npm install failed; the ONNX Runtime interop tests will be skipped"
fi
exit 0
