#!/usr/bin/env bash
# Data-parallel scaling (a benchmark, not a test): training steps per second
# on the MLP and LeNet-5 at global batch 64 for
#   1 rank x 1 thread, 1 rank x 2 threads, 2 ranks x 1 thread (mpirun), and
#   1 rank x 1 thread with --batch-shards 2 (the 2 ranks' bits in one
#   process: what that option costs)
# Each configuration trains 50 and then 250 steps from the same prepared
# folder; steps/s = 200 / (t250 - t50), so start-up, data loading and the
# final checkpoint cancel out.  docs/training.md models the allreduce cost.
#   benchmarks/mpi_scaling.sh [QAT_BINARY] [FASHION_MNIST_DIR]
set -euo pipefail
qat=$(realpath "${1:-build/examples/qat}")
data=${2:-/usr/share/datasets/fashion-mnist}
command -v mpirun > /dev/null || { echo "mpirun is missing (apt-get install openmpi-bin)"; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

seconds() {  # LAUNCH... : wall time of one run
  local start end
  start=$(date +%s.%N)
  "$@" > /dev/null 2>&1
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

printf '%-8s %-30s %10s\n' model configuration steps/s
for name in mlp lenet5; do
  "$qat" zoo "$name" -o "$name.onnx" --seed 3
  "$qat" prepare "$name.onnx" -o "$name.prepared" > /dev/null
  for config in "1x1" "1x2" "2x1" "1x1s2"; do
    ranks=${config%x*} threads=${config#*x} shards=1
    case $threads in *s*) shards=${threads#*s} threads=${threads%s*} ;; esac
    launch=()
    [ "$ranks" -gt 1 ] && launch=(mpirun --oversubscribe -np "$ranks")
    times=()
    for steps in 50 250; do
      rm -rf run && cp -r "$name.prepared" run
      times+=("$(seconds "${launch[@]}" "$qat" train run --data "$data" --batch 64 \
                 --limit $((steps * 64)) --epochs 1 --threads "$threads" --save-every 100000 \
                 --batch-shards "$shards")")
    done
    rate=$(echo "200 / (${times[1]} - ${times[0]})" | bc -l)
    label="$ranks rank(s) x $threads thread(s)"
    [ "$shards" -gt 1 ] && label="$label, $shards shards"
    printf '%-8s %-30s %10.1f\n' "$name" "$label" "$rate"
  done
done
