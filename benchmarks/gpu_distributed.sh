#!/usr/bin/env bash
# Data-parallel training on a machine with CUDA devices, in one go:
#
#     bash benchmarks/gpu_distributed.sh [DATA_DIR] [LOG_DIR]
#
# DATA_DIR holds amazon-mds/sorted_data_acl.tar.gz (default ../shared/data); logs go to LOG_DIR
# (default gpu-logs). Steps, each under its own time limit:
#   1. the torchrun tests (tests/test_distributed.py: 2 gloo CPU ranks against one process);
#   2. benchmarks/distributed.py --device cuda: finetune and pretrain on one GPU beside 1 and 2
#      CPU ranks, and the gradient-averaging comparison (CPU ranks);
#   3. with 2 or more GPUs: finetune on 2 GPUs (torchrun, NCCL) against 1 GPU, same seed and
#      total batch, on the embedded kitchen reviews.
set -u
DATA=${1:-../shared/data}
LOGS=${2:-gpu-logs}
mkdir -p "$LOGS"
source "$(dirname "$0")/gpu_env.sh"

step env 60 $PY -c "
import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.device_count(), 'GPUs',
torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
step torchrun_tests 240 $PY -m pytest -q -p no:cacheprovider tests/test_distributed.py
step distributed_benchmark "${BENCH_LIMIT:-900}" $PY benchmarks/distributed.py --device cuda --data "$DATA"

GPUS=$($PY -c "import torch; print(torch.cuda.device_count())")
if [ "$GPUS" -ge 2 ]; then
    K=data/amazon-kitchen
    ARGS="$K/positive.review[:800] $K/negative.review[:800] --test $K/positive.review[800:]
          --test $K/negative.review[800:] --task sentiment --hidden 1000 --max-epochs 5 --device cuda --quiet"
    step vocab 120 $PY -m textrelu build-vocab "$K/positive.review[:800]" "$K/negative.review[:800]" \
        --size 20000 --ngrams 2 --out "$LOGS/vocab.txt" --quiet
    # shellcheck disable=SC2086  # ARGS is a list of words
    step finetune_1gpu 300 $PY -m textrelu finetune $ARGS --vocab "$LOGS/vocab.txt" --out "$LOGS/one.pt"
    # shellcheck disable=SC2086
    step finetune_2gpu 300 $PY -m torch.distributed.run --standalone --nproc-per-node 2 \
        -m textrelu finetune $ARGS --vocab "$LOGS/vocab.txt" --out "$LOGS/two.pt"
fi
