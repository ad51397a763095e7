#!/usr/bin/env bash
# The GPU checks and benchmarks, in one go, for a machine with a CUDA device:
#
#     bash benchmarks/gpu_check.sh [DATA_DIR] [LOG_DIR]
#
# DATA_DIR holds imdb/aclImdb_v1_nofeat.tar.gz (default ../shared/data); logs go to LOG_DIR
# (default gpu-logs). Steps, each under its own time limit so that one stuck step leaves the
# others their turn, most telling first:
#   1. the GPU test tier (tests/test_gpu.py: CUDA against CPU results);
#   2. pre-training throughput on the GPU (benchmarks/gpu_pretrain.sh:
#      benchmarks/pretrain_throughput.py --device cuda at 20,000 and 100,000 terms, batch 64 and 512);
#   3. scoring throughput with textrelu on the GPU (benchmarks/score_throughput.py --device cuda);
#   4. the whole test suite, where --device auto now means the GPU.
# Wheels in .whl/ (packages the machine lacks, e.g. orjson) are installed to /tmp/site first.
set -u
DATA=${1:-../shared/data}
LOGS=${2:-gpu-logs}
mkdir -p "$LOGS"
source "$(dirname "$0")/gpu_env.sh"

step env 60 $PY -c "
import sys, torch, numpy, numba, scipy, sklearn
print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'numpy', numpy.__version__,
      'numba', numba.__version__, 'scipy', scipy.__version__, 'sklearn', sklearn.__version__)
print(torch.cuda.get_device_name(), torch.cuda.get_device_properties(0).total_memory // 2**20, 'MiB')
import textrelu.cli, orjson"
step gpu_tests 120 $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py
step pretrain_throughput "${PRETRAIN_LIMIT:-400}" env SKIP_TESTS=1 bash benchmarks/gpu_pretrain.sh "$DATA"
step score_throughput "${SCORE_LIMIT:-200}" $PY benchmarks/score_throughput.py --device cuda \
    --data "$DATA" --repeats 3
# pytest-xdist, where the machine has it, spreads the suite over 8 processes
XDIST=$($PY -c "import xdist" 2>/dev/null && echo "-n 8")
step test_suite "${SUITE_LIMIT:-150}" $PY -m pytest -q -p no:cacheprovider $XDIST tests
