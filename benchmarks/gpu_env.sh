# Sourced by the GPU scripts (gpu_check.sh, gpu_distributed.sh, gpu_images.sh, gpu_pretrain.sh), run
# from the project root: the project on PYTHONPATH without installing it, unbuffered output, PY
# (python3, or $PYTHON), the wheels in .whl/ (packages the GPU machine lacks, e.g. orjson) installed
# to /tmp/site first, and `step`, which runs one command under a time limit with its log in $LOGS.
export PYTHONUNBUFFERED=1 PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    local started=$SECONDS
    timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - started)) s (limit $limit s)"
    tail -n "${TAIL:-25}" "$LOGS/$name.log"
}
