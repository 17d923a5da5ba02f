#!/usr/bin/env bash
# Runs each libFuzzer target for a bounded time.  The targets come from the
# sanitizer build (.ci/sanitize.sh builds them; this script builds them
# itself, with the same settings, when run alone).
#   FUZZ_SECONDS  seconds per target at most (default 60); longer runs: e.g. 3600
#   FUZZ_RUNS     inputs per target at most (default 20000; -1: no limit).
#                 With the fixed seed, a run that hits this bound tries the
#                 same inputs on every machine, so CI does not flake.
#   QAT_BUILD_DIR the main build, whose qat program makes the seed corpora
# A crash, a leak, a sanitizer report or a hang (> 10 s on one input) fails
# the run; the input is kept in $build_dir/artifacts/ to become a
# regression test (see docs/robustness.md).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
runs=${FUZZ_RUNS:-20000}
main_build=${QAT_BUILD_DIR:-build}
build_dir=${QAT_SANITIZE_BUILD_DIR:-build-sanitize}
targets=(fuzz_model_pipeline fuzz_calibration_table fuzz_checkpoint fuzz_readers)
for t in "${targets[@]}"; do
  [ -x "$build_dir/tests/fuzz/$t" ] || { bash .ci/sanitize.sh --build-only; break; }
done

# Seed corpora from the test models and the files the pipeline writes.
corpus=$build_dir/corpus
rm -rf "$corpus" && mkdir -p "$corpus"/{fuzz_model_pipeline,fuzz_calibration_table,fuzz_checkpoint,fuzz_readers}
qat=$main_build/examples/qat
seeds=$build_dir/seeds
rm -rf "$seeds" && mkdir -p "$seeds"
if [ -x "$qat" ]; then
  "$qat" zoo lenet5 -o "$corpus/fuzz_model_pipeline/lenet5.onnx"
  "$qat" zoo mlp -o "$seeds/mlp.onnx"
  python3 - "$seeds" <<'PY'
import random, struct, sys
d = sys.argv[1]
def npy(path, descr, shape, raw):
    h = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, ", ".join(map(str, shape)) + ("," if len(shape) == 1 else ""))
    h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
    open(path, "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + raw)
r = random.Random(1)
npy(d + "/x.npy", "<f4", [64, 784], struct.pack("<%df" % (64 * 784), *[r.random() for _ in range(64 * 784)]))
npy(d + "/y.npy", "<i8", [64], struct.pack("<64q", *[r.randrange(10) for _ in range(64)]))
PY
  "$qat" calibrate "$seeds/mlp.onnx" --data "$seeds/x.npy,$seeds/y.npy" \
    -o "$corpus/fuzz_calibration_table/table.json" --per-channel 2> /dev/null
  "$qat" quantize "$seeds/mlp.onnx" --table "$corpus/fuzz_calibration_table/table.json" \
    -o "$corpus/fuzz_model_pipeline/qdq.onnx"
  "$qat" prepare "$corpus/fuzz_model_pipeline/qdq.onnx" -o "$seeds/prepared" > /dev/null
  cp "$seeds/prepared/checkpoint" "$corpus/fuzz_checkpoint/"
  { printf '\x00'; cat "$seeds/y.npy"; } > "$corpus/fuzz_readers/labels.npy"
fi
for m in /usr/share/libonnx-testdata/data/node/test_{gemm_default_single_elem_vector_bias,conv_with_strides_padding,quantizelinear,dequantizelinear}/model.onnx; do
  [ -f "$m" ] && cp "$m" "$corpus/fuzz_model_pipeline/$(basename "$(dirname "$m")").onnx"
done
idx=/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
[ -f "$idx" ] && { printf '\x03'; cat "$idx"; } > "$corpus/fuzz_readers/labels.idx.gz"

mkdir -p "$build_dir/artifacts"
export ASAN_OPTIONS=detect_leaks=1
status=0
failed=0
for t in "${targets[@]}"; do
  echo "== $t: up to ${seconds}s and $runs inputs, from $(ls "$corpus/$t" | wc -l) seeds"
  if ! "$build_dir/tests/fuzz/$t" "$corpus/$t" -max_total_time="$seconds" -runs="$runs" \
       -timeout=10 -seed=1 \
       -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$build_dir/artifacts/$t-" \
       > "$build_dir/$t.log" 2>&1; then
    echo "$t FAILED:"; tail -40 "$build_dir/$t.log"; status=1; failed=$((failed + 1))
  else
    grep -E "stat::number_of_executed_units|stat::new_units_added" "$build_dir/$t.log" | tr '\n' ' '; echo
  fi
done
echo "fuzzers: $(( ${#targets[@]} - failed )) passed, $failed failed"
exit $status
