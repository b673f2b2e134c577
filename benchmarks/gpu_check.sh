#!/usr/bin/env bash
# The GPU figures, on a machine with an NVIDIA GPU and a CUDA build of torch 2.13.0 installed
# (this script installs the project beside it, never torch: such machines often have no network).
# Prints: the batched device-cohort path at 100, 1,000 and 10,000 devices; Persona's cloud step
# at 1,000, 10,000 and 100,000 devices; then runs the CUDA tests. Prepared; not yet run on a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible to torch ' + torch.__version__)"
python -c "import torch; print('GPU:', torch.cuda.get_device_name(), '| torch', torch.__version__)"
pip install --quiet --no-deps -e . 2>/dev/null || export PYTHONPATH="$PWD"
python benchmarks/engine_overhead.py --cohorts 100,1000,10000 --cohort-device cuda
python benchmarks/cloud_step.py --devices 1000 10000 100000
python -m pytest -q -p no:cacheprovider tests/test_cloud_device.py tests/test_cohort.py
