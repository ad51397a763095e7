# Sourced by the GPU scripts (gpu_check.sh, gpu_images.sh), run from the project root: the project
# on PYTHONPATH without installing it, unbuffered output, PY (python3, or $PYTHON), and the wheels
# in .whl/ (packages the GPU machine lacks, e.g. orjson) installed to /tmp/site first.
export PYTHONUNBUFFERED=1 PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
