#!/usr/bin/env bash
# MNIST runs of the paper's protocol on one GPU, JOBS at a time (default 4; one process each):
#
#     JOBS=4 bash benchmarks/gpu_images.sh MNIST_DIR [RUNS_DIR] [LIMIT_SECONDS]
#
# Minibatches of 10 leave a GPU mostly waiting on Python, so a few runs share one well. Measured
# on one H100 (2026-11-26, `textrelu images mnist --no-pretrain --epochs 1 ...`, see
# docs/performance.md): one run alone 520-620 minibatches/s (8-10 s an epoch of 50,000 images),
# four at once 260-350 each (twice the total), and twelve at once (this script's first form)
# finished none of their runs in 525 s. Each run is a `textrelu run pipelines/mnist.toml` with one
# CPU thread, stopped after LIMIT_SECONDS (default 540) so that one slow run does not hold up the
# rest; the twelve runs take three such rounds at JOBS=4, more than one session's device time, so
# comment out what is not needed. What it runs:
#   - the paper's six rows (rectifier, tanh, softplus; with and without pre-training) at the
#     rate chosen for the rectifier on validation (0.05; pipelines/mnist.toml), L1 0.0001 but for
#     the pre-trained rectifier (L1 0, the pipeline's, chosen on validation); no row has the
#     symmetry trick (the pipeline's default: with pre-training's decoders started right, it only
#     renames the weights, see pipelines/mnist.toml);
#   - pre-trained rectifier variants (L1 0) to choose on validation: fine-tuning rates 0.02 and 0.01
#     (the paper's grid holds 0.01), pre-training rates 0.003 and 0.03 (and 0.003 with fine-tuning
#     at 0.01), masking noise 0.5.
# Run it from the project root; wheels in .whl/ are installed first (gpu_env.sh). Run folders go to RUNS_DIR (default runs); each run's log to
# RUNS_DIR/logs/NAME.log (with the validation error of every epoch, so a stopped run still tells).
# SMOKE=1 makes every run tiny (first 300 images, one epoch), to check the script on a CPU.
set -u
DATA=$(cd "${1:?MNIST_DIR}" && pwd)
RUNS=${2:-runs}
LIMIT=${3:-540}
mkdir -p "$RUNS/logs"
export OMP_NUM_THREADS=1
source "$(dirname "$0")/gpu_env.sh"
QUICK=()
if [ "${SMOKE:-0}" = 1 ]; then
    QUICK=(--set images.subset=300 --set images.epochs=1 --set images.pretrain_epochs=1)
fi

launch() {  # launch NAME --set ... : one run in the background
    local name=$1
    shift
    timeout "$LIMIT" $PY -m textrelu.cli run pipelines/mnist.toml --runs-dir "$RUNS" \
        --set "images.data_dir=\"$DATA\"" --set name=\"$name\" "$@" "${QUICK[@]}" \
        >"$RUNS/logs/$name.log" 2>&1 &
    while [ "$(jobs -rp | wc -l)" -ge "${JOBS:-4}" ]; do
        wait -n
    done
}

launch mnist-gpu-relu-nopretrain --set images.pretrain=false --set images.l1=0.0001
launch mnist-gpu-relu-pretrain
for act in tanh softplus; do
    launch mnist-gpu-$act-nopretrain --set "images.activation=\"$act\"" --set images.pretrain=false \
        --set images.l1=0.0001
    launch mnist-gpu-$act-pretrain --set "images.activation=\"$act\"" --set images.l1=0.0001
done
launch mnist-gpu-relu-pretrain-ft0.02 --set images.learning_rate=0.02 --set images.epochs=40
launch mnist-gpu-relu-pretrain-ft0.01 --set images.learning_rate=0.01 --set images.epochs=50
launch mnist-gpu-relu-pretrain-plr0.003 --set images.pretrain_learning_rate=0.003
launch mnist-gpu-relu-pretrain-plr0.03 --set images.pretrain_learning_rate=0.03
launch mnist-gpu-relu-pretrain-ft0.01-plr0.003 --set images.learning_rate=0.01 --set images.epochs=50 \
    --set images.pretrain_learning_rate=0.003
launch mnist-gpu-relu-pretrain-noise0.5 --set images.noise=0.5
wait
for log in "$RUNS"/logs/*.log; do
    echo "== $(basename "$log" .log): $(grep -h -E 'test error|Error|error:' "$log" | tail -n 2 | tr '\n' ' ')"
done
