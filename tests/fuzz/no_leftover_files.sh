#!/usr/bin/env bash
# The fuzz harnesses that go through files (fuzz_checkpoint, fuzz_readers)
# leave nothing behind: run on a few inputs, a valid checkpoint among them
# (so that its save/load round trip runs too), neither $TMPDIR nor /tmp gains
# a file of theirs (issue 13: qat_fuzz_*_<pid> piled up).
#   no_leftover_files.sh WORK_DIR FUZZ_CHECKPOINT FUZZ_READERS [QAT]
set -euo pipefail
work=$1 checkpoint_fuzzer=$2 readers_fuzzer=$3 qat=${4:-}
rm -rf "$work" && mkdir -p "$work/in" "$work/tmp"
fail() { echo "FAILED: $*"; exit 1; }

printf 'not a checkpoint' > "$work/in/garbage"
printf '\x01\x00\x00\x08\x01\x00\x00\x00\x03abc' > "$work/in/idx_plain"
{ printf '\x03'; printf '\x00\x00\x08\x01\x00\x00\x00\x02xy' | gzip -c; } > "$work/in/idx_gzip"
printf '\x01\x00\x00\x08\x01\x00\x00\x00\x09ab' > "$work/in/idx_truncated"
inputs=("$work"/in/*)
if [ -n "$qat" ]; then
  "$qat" zoo mlp -o "$work/mlp.onnx" > /dev/null
  "$qat" prepare "$work/mlp.onnx" -o "$work/prepared" > /dev/null
  cp "$work/prepared/checkpoint" "$work/in/checkpoint"
  inputs+=("$work/in/checkpoint")
fi

for fuzzer in "$checkpoint_fuzzer" "$readers_fuzzer"; do
  TMPDIR=$work/tmp "$fuzzer" "${inputs[@]}" > "$work/run.log" 2>&1 &
  pid=$!
  wait "$pid" || fail "$fuzzer failed: $(cat "$work/run.log")"
  left=$(ls -A "$work/tmp")
  [ -z "$left" ] || fail "$(basename "$fuzzer") left in \$TMPDIR: $left"
  for f in /tmp/qat_fuzz_*_"$pid"*; do
    [ -e "$f" ] && fail "$(basename "$fuzzer") left $f"
  done
done
echo "${#inputs[@]} inputs through 2 harnesses, no file left"
echo "1 passed, 0 failed"
