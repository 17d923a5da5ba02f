#!/usr/bin/env bash
# Crash safety: a training run killed with SIGKILL at random moments (at
# least 20 times) always leaves a loadable checkpoint, and resuming from
# whatever it left finishes with parameters bit-identical to an
# uninterrupted run (compared through the exported models, byte for byte).
# No kill leaves a checkpoint.tmp, and temporary files never pile up: at most
# the one the last kill interrupted, none after a run that finishes; the same
# for 20 kills of `qat calibrate`.
#   crash_safety.sh QAT_BINARY WORK_DIR
set -euo pipefail
qat=$1 work=$2
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "FAILED: $*"; exit 1; }
# The temporary files the writers of qat/file_io.h leave when killed, and the
# fixed names older writers used.
temps() { find "$1" -maxdepth 1 \( -name '.*.qat-tmp.*' -o -name '*.tmp' -o -name '*.tmp.*' \) | wc -l; }

python3 - <<'PY'
import random, struct
def npy(path, descr, shape, raw):
    h = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, ", ".join(map(str, shape)) + ("," if len(shape) == 1 else ""))
    h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
    open(path, "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + raw)
r = random.Random(3)
npy("x.npy", "<f4", [384, 784], struct.pack("<%df" % (384 * 784), *[r.random() for _ in range(384 * 784)]))
npy("y.npy", "<i8", [384], struct.pack("<384q", *[r.randrange(10) for _ in range(384)]))
PY
"$qat" zoo mlp -o mlp.onnx
settings=(--data x.npy,y.npy --epochs 90 --batch 16 --lr 1e-3 --seed 5 --threads 1 --save-every 1)

# The uninterrupted run.
"$qat" prepare mlp.onnx -o straight > /dev/null
"$qat" train straight "${settings[@]}" > /dev/null 2>&1
"$qat" export straight -o straight.onnx > /dev/null

# The same run, killed again and again.
"$qat" prepare mlp.onnx -o killed > /dev/null
kills=0
resume=0  # 1 once the checkpoint holds an interrupted run
RANDOM=7
for attempt in $(seq 1 400); do
  if [ "$resume" = 1 ]; then
    "$qat" train killed --data x.npy,y.npy --resume > run.log 2>&1 &
  else
    "$qat" train killed "${settings[@]}" > run.log 2>&1 &
  fi
  pid=$!
  if [ "$kills" -ge 20 ]; then
    if ! wait "$pid"; then
      grep -q "holds no interrupted run" run.log || fail "the final run failed: $(cat run.log)"
      "$qat" train killed "${settings[@]}" > run.log 2>&1 || fail "the final run failed: $(cat run.log)"
    fi
    break
  fi
  # Between 0.1 and 0.4 s: past start-up, somewhere inside training (a run
  # resumes where the last one stopped, so shorter waits leave room for 20
  # kills before it ends).
  sleep "0.$(( RANDOM % 3 + 1 ))$(( RANDOM % 10 ))"
  if kill -9 "$pid" 2> /dev/null; then
    kills=$((kills + 1))
  fi
  wait "$pid" 2> /dev/null || true
  [ -e killed/checkpoint.tmp ] && fail "kill $kills left killed/checkpoint.tmp"
  [ "$(temps killed)" -le 1 ] || fail "temporary files pile up after kill $kills: $(ls -a killed)"
  # Whatever the kill interrupted, the checkpoint loads.
  "$qat" export killed -o probe.onnx > probe.log 2>&1 ||
    fail "checkpoint unloadable after kill $kills: $(cat probe.log)"
  grep -q '"epochs"' run.log && break  # the run finished before the kill
  # Resume what the kill interrupted; if it was killed before its first
  # save, the resume says so at once and the run starts again.
  if grep -q "holds no interrupted run" run.log; then resume=0; else resume=1; fi
done
[ "$kills" -ge 20 ] || fail "only $kills kills happened"
"$qat" export killed -o killed.onnx > /dev/null
cmp -s straight.onnx killed.onnx || fail "the resumed run differs from the uninterrupted one"
[ "$(temps killed)" = 0 ] || fail "temporary files left after the final run: $(ls -a killed)"
echo "survived $kills SIGKILLs; the resumed run is bit-identical"

# Calibration killed 20 times: the table is the previous one or a new one,
# never torn, and its temporary files do not accumulate.
mkdir calib
"$qat" calibrate mlp.onnx --data x.npy,y.npy -o calib/table.json > /dev/null 2>&1
calib_kills=0
for attempt in $(seq 1 200); do
  "$qat" calibrate mlp.onnx --data x.npy,y.npy -o calib/table.json > /dev/null 2>&1 &
  pid=$!
  sleep "0.0$(( RANDOM % 10 ))$(( RANDOM % 10 ))"
  kill -9 "$pid" 2> /dev/null && calib_kills=$((calib_kills + 1))
  wait "$pid" 2> /dev/null || true
  python3 -c 'import json, sys; json.load(open(sys.argv[1]))' calib/table.json ||
    fail "calib/table.json is torn after calibrate kill $calib_kills"
  [ "$(temps calib)" -le 1 ] || fail "temporary files pile up after calibrate kill $calib_kills: $(ls -a calib)"
  [ "$calib_kills" -ge 20 ] && break
done
[ "$calib_kills" -ge 20 ] || fail "only $calib_kills calibrate kills happened"
"$qat" calibrate mlp.onnx --data x.npy,y.npy -o calib/table.json > /dev/null 2>&1
[ "$(temps calib)" = 0 ] || fail "temporary files left after calibrate: $(ls -a calib)"
echo "survived $calib_kills SIGKILLs of calibrate; no temporary file piled up"
echo "1 passed, 0 failed"
