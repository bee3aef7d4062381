#!/usr/bin/env bash
# `python -m train fit` on a lent GPU machine: Python 3.12 with JAX and no TensorFlow or Keras.
# Here, first: python -m train pack .pack --wheels (the data and wheels, about 42 MiB).
# Then, through the device tool, with carry [".pack"]:
#   bash train/on_device.sh models/NAME [more fit arguments]
# It installs the wheels, trains under JAX on the packed data (--data and --unknown are given)
# and leaves the model directory, without its checkpoints, as $OUT/NAME.tar.gz. A call lasts at
# most 10 minutes, so fit stops after FIT_SECONDS (default 540); the same command, run again
# while the machine is still warm (it is given back 30 s after a call), resumes the run from its
# checkpoint. Judge the model here, on the original data: python -m train evaluate / calibrate.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?give the model directory to write, e.g. models/gpu}
shift
if ! ls .pack/wheels/*.whl >/dev/null 2>&1; then
    echo "no wheels in .pack/wheels: run 'python -m train pack .pack --wheels' first and carry .pack" >&2
    exit 1
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .pack/wheels/*.whl
export PYTHONPATH=/tmp/site KERAS_BACKEND=jax PYTHONUNBUFFERED=1 ANIMEREC_DATA=.pack
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
status=0
timeout "${FIT_SECONDS:-540}" python3 -m train fit --data .pack/faces --unknown .pack/unknown --out "$out" "$@" \
    || status=$?
if [ "$status" -eq 124 ]; then
    echo "fit stopped after ${FIT_SECONDS:-540} s: run the same command again at once to resume it" >&2
fi
[ "$status" -eq 0 ] || exit "$status"
tar -czf "${OUT:-.}/$(basename "$out").tar.gz" --exclude training "$out"
