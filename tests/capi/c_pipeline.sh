#!/usr/bin/env bash
# The C example's pipeline, and a run killed mid-way and resumed (ctest
# examples.c_pipeline):
#   A: qat_example pipeline A: prepare, train first, train second (chained),
#      export, evaluate, in one process;
#   B: the same stages one process each, with the second training call
#      SIGKILLed at step 20 (its progress callback waits there) and finished
#      with --resume.
# The exports must be the same bytes.  (Not the checkpoints: their metadata
# map is serialized in no fixed order.)
#   c_pipeline.sh QAT_EXAMPLE WORK_DIR
set -euo pipefail
exe=$1 work=$2
rm -rf "$work" && mkdir -p "$work/A" "$work/B"

"$exe" pipeline "$work/A" | tee "$work/A.log"
grep -q "exported int8 model" "$work/A.log"
grep -Eq "evaluate int8: accuracy 0\.[0-9]+" "$work/A.log"

"$exe" prepare "$work/B" > "$work/B.log"
"$exe" train "$work/B" first >> "$work/B.log"

# The second call waits at step 20 on a FIFO that nobody writes, and dies
# there by SIGKILL; its last checkpoint is the one of step 16 (save every 8).
fifo=$work/pause.fifo
mkfifo "$fifo"
exec 3<> "$fifo"  # held open so that the reader blocks rather than sees EOF
"$exe" train "$work/B" second --pause-at 20 < "$fifo" > "$work/killed.log" &
pid=$!
for _ in $(seq 600); do
  grep -q "paused at step 20" "$work/killed.log" && break
  kill -0 "$pid" 2> /dev/null || break
  sleep 0.1
done
grep -q "paused at step 20" "$work/killed.log" ||
  { echo "the second call never reached step 20:"; cat "$work/killed.log"; exit 1; }
kill -KILL "$pid"
rc=0
wait "$pid" || rc=$?
exec 3>&-
rm -f "$fifo"
[ "$rc" -eq 137 ] || { echo "the killed call exited with $rc, not 137 (SIGKILL)"; exit 1; }
echo "killed the second call at step 20"

"$exe" train "$work/B" second --resume | tee -a "$work/B.log"
# The resumed call starts after the last checkpoint (step 16), not at 1.
grep -Eq "train second \(resumed\): steps 17 to [0-9]+ of [0-9]+" "$work/B.log" ||
  { echo "the resumed call did not continue from step 17"; exit 1; }
"$exe" export "$work/B" >> "$work/B.log"

# The int8 export, and the export with float weights (every trained bit).
cmp "$work/A/int8.onnx" "$work/B/int8.onnx"
cmp "$work/A/float_weights.onnx" "$work/B/float_weights.onnx"
echo "killed and resumed: the exports are byte-identical to the uninterrupted run's"
