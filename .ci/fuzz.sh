#!/usr/bin/env bash
# Runs each libFuzzer target for a fixed number of inputs from a fixed seed,
# so that CI tries the same inputs on every machine and does not flake.  The
# targets come from the sanitizer build (.ci/sanitize.sh builds them; this
# script builds them itself, with the same settings, when run alone).
#   FUZZ_RUNS     inputs per target (default: the target's count below;
#                 -1: no limit)
#   FUZZ_SECONDS  seconds per target at most (default 240, CI's budget of
#                 about 3 minutes a target): a slower machine stops there
#                 (the log then says the run ended on time, not on its
#                 count); longer runs: e.g. 3600 with FUZZ_RUNS=-1
#   QAT_BUILD_DIR the main build, whose qat program makes the seed corpora
# A crash, a leak, a sanitizer report or a hang (> 10 s on one input) fails
# the run; the input is kept in $build_dir/artifacts/ to become a
# regression test (see docs/robustness.md).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-240}
main_build=${QAT_BUILD_DIR:-build}
build_dir=${QAT_SANITIZE_BUILD_DIR:-build-sanitize}
# About 2-3 minutes each under ASan and UBSan on this 2-core machine with
# nothing else running, as in CI.  Rates fall as a run reaches deeper
# inputs: fuzz_model_pipeline averaged 13,300/s over 400k inputs but 2,800/s
# over 1.7M; calibration table 490/s over 45k (its seed table is 32 KB of
# JSON); checkpoint 48,400/s over 3M; readers 24,500/s over 1.2M.
# fuzz_readers runs 5x the 595k inputs in which it first found the
# (2^60, 784) .npy overflow; with its dictionary (tests/fuzz/<target>.dict,
# passed when it exists) and the 2-D .npy seeds it finds that overflow
# (before the fix) after about 16k inputs at seed 1, where 1.2M inputs
# without them did not.
declare -A default_runs=(
  [fuzz_model_pipeline]=500000
  [fuzz_calibration_table]=60000
  [fuzz_checkpoint]=5000000
  [fuzz_readers]=3000000
)
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
# Two-dimensional shapes for fuzz_readers: a small valid one, and the
# features' header alone, whose size check fails.
npy(d + "/small2d.npy", "<f4", [2, 3], struct.pack("<6f", *range(6)))
npy(d + "/header2d.npy", "<f4", [64, 784], b"")
PY
  "$qat" calibrate "$seeds/mlp.onnx" --data "$seeds/x.npy,$seeds/y.npy" \
    -o "$corpus/fuzz_calibration_table/table.json" --per-channel 2> /dev/null
  "$qat" quantize "$seeds/mlp.onnx" --table "$corpus/fuzz_calibration_table/table.json" \
    -o "$corpus/fuzz_model_pipeline/qdq.onnx"
  "$qat" prepare "$corpus/fuzz_model_pipeline/qdq.onnx" -o "$seeds/prepared" > /dev/null
  cp "$seeds/prepared/checkpoint" "$corpus/fuzz_checkpoint/"
  for f in y small2d header2d; do
    { printf '\x00'; cat "$seeds/$f.npy"; } > "$corpus/fuzz_readers/$f.npy"
  done
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
  runs=${FUZZ_RUNS:-${default_runs[$t]}}
  echo "== $t: $runs inputs (at most ${seconds}s), from $(ls "$corpus/$t" | wc -l) seeds"
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  if ! "$build_dir/tests/fuzz/$t" "$corpus/$t" "${dict[@]}" -max_total_time="$seconds" -runs="$runs" \
       -timeout=10 -seed=1 \
       -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$build_dir/artifacts/$t-" \
       > "$build_dir/$t.log" 2>&1; then
    echo "$t FAILED:"; tail -40 "$build_dir/$t.log"; status=1; failed=$((failed + 1))
  else
    grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added" \
      "$build_dir/$t.log" | tr '\n' ' '; echo
    done_runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build_dir/$t.log")
    if [ "$runs" -ge 0 ] && [ "${done_runs:-0}" -lt "$runs" ]; then
      echo "   (ended on the ${seconds}s limit after $done_runs of $runs inputs: not the fixed set)"
    fi
  fi
done
echo "fuzzers: $(( ${#targets[@]} - failed )) passed, $failed failed"
exit $status
