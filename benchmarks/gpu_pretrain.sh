#!/usr/bin/env bash
# Sparse against dense pre-training on a GPU, in one command (from the project root):
#
#     bash benchmarks/gpu_pretrain.sh [DATA_DIR]
#
# DATA_DIR holds imdb/aclImdb_v1_nofeat.tar.gz (default ../shared/data). Prints the GPU tests'
# result (tests/test_gpu.py: CUDA against the CPU, within 1e-4; not with SKIP_TESTS=1), then the table of
# benchmarks/pretrain_throughput.py --device cuda at 20,000 and 100,000 terms, batch 64 and 512:
# sparse + sampled, the same with dense gradients, sparse + full and the dense torch model,
# measured in the same run, with the ratios to dense.
set -u
DATA=${1:-../shared/data}
source "$(dirname "$0")/gpu_env.sh"
[ "${SKIP_TESTS:-0}" = 1 ] || timeout "${TESTS_LIMIT:-120}" $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -n 5
for BATCH in 64 512; do
    timeout "${PRETRAIN_LIMIT:-240}" $PY benchmarks/pretrain_throughput.py --device cuda --data "$DATA" \
        --sizes 20000 100000 --batch "$BATCH" --reviews 20000 --seconds 1.5 --repeats 3
done
