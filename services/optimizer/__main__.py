"""Nexus optimizer: Portfolio optimisation on live market data."""

import os

# One BLAS thread unless the operator says otherwise (numpy reads it on import, hence before the imports):
# solves run on one worker thread on small matrices, and on a shared 2-core machine OpenBLAS's spinning
# worker threads made numpy up to 50x slower (bench/bench_optimizer.py).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from nexus.runtime import main
from optimizer.service import Optimizer

main(Optimizer)
