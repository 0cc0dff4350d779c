"""Throughput of the reference generator (PyPI s2generator 0.0.23), one process.

Usage: python benches/reference_throughput.py SAMPLES_1TO1 SAMPLES_MULTI
Prints one line per setting: "<setting> <ok> <requested> <seconds> <ok-samples/s>".
"""
import os
import sys
import time

# One BLAS thread: with two, the reference runs about 10x slower on this machine.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402
from s2generator.symbol import SeriesSymbolGenerator  # noqa: E402


def measure(requests, input_dimension, output_dimension):
    generator = SeriesSymbolGenerator()
    rng = np.random.RandomState(7)
    ok = 0
    start = time.perf_counter()
    for _ in range(requests):
        symbol, x, y = generator.run(
            rng, seq_length=256, input_dimension=input_dimension, output_dimension=output_dimension
        )
        if symbol is not None:
            ok += 1
    seconds = time.perf_counter() - start
    return ok, seconds


def main():
    n_single, n_multi = int(sys.argv[1]), int(sys.argv[2])
    for name, n, dims in (("1to1", n_single, (1, 1)), ("multi", n_multi, (None, None))):
        ok, seconds = measure(n, *dims)
        print(f"{name} {ok} {n} {seconds:.2f} {ok / seconds:.3f}", flush=True)


if __name__ == "__main__":
    main()
