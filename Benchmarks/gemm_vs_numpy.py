#!/usr/bin/env python3
"""Measure Recurrent's GEMM side by side with numpy's float32 matmul (OpenBLAS).

Usage (from the repository root):
    python3 Benchmarks/gemm_vs_numpy.py [--rounds 5] [--repeats 20]

It builds the release binary, then for 1 and 2 threads and each shape runs numpy and
`recurrent bench-gemm` alternately `--rounds` times (each a median of `--repeats` products)
and prints GFLOP/s and the median ratio ours / numpy. numpy's thread count is set with
OPENBLAS_NUM_THREADS / OMP_NUM_THREADS in a fresh process, with OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE removed from its environment (OpenBLAS then picks its own kernel: AVX-512 where
the CPU has it; some machines here set OPENBLAS_CORETYPE=Haswell globally).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

SHAPES = [(512, 512, 512), (1024, 1024, 1024), (64, 768, 256), (64, 1536, 512), (4096, 768, 256)]

NUMPY_SNIPPET = r"""
import sys, time, numpy as np
m, n, k, repeats = map(int, sys.argv[1:5])
rng = np.random.default_rng(1)
a = rng.uniform(-1, 1, (m, k)).astype(np.float32)
b = rng.uniform(-1, 1, (k, n)).astype(np.float32)
c = np.empty((m, n), dtype=np.float32)
for _ in range(3):
    np.matmul(a, b, out=c)
times = []
for _ in range(repeats):
    t = time.perf_counter()
    np.matmul(a, b, out=c)
    times.append(time.perf_counter() - t)
times.sort()
print(2.0 * m * n * k / times[len(times) // 2] / 1e9)
"""


def numpy_gflops(m, n, k, threads, repeats):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        env.pop(key, None)
    out = subprocess.run([sys.executable, "-c", NUMPY_SNIPPET, str(m), str(n), str(k), str(repeats)],
                         env=env, check=True, capture_output=True, text=True).stdout
    return float(out.strip())


def ours_gflops(binary, m, n, k, threads, repeats):
    out = subprocess.run([binary, "bench-gemm", "--m", str(m), "--n", str(n), "--k", str(k),
                          "--threads", str(threads), "--repeats", str(repeats), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["gflops"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not args.no_build:
        subprocess.run(["swift", "build", "-c", "release", "--product", "recurrent"], cwd=root,
                       check=True, stdout=subprocess.DEVNULL)
    binary = os.path.join(root, ".build", "release", "recurrent")
    print("| shape [m x k] x [k x n] | threads | numpy GFLOP/s | Recurrent GFLOP/s | ratio |")
    print("|---|---|---|---|---|")
    for threads in (1, 2):
        for (m, n, k) in SHAPES:
            ours, theirs, ratios = [], [], []
            for _ in range(args.rounds):
                t = numpy_gflops(m, n, k, threads, args.repeats)
                o = ours_gflops(binary, m, n, k, threads, args.repeats)
                theirs.append(t)
                ours.append(o)
                ratios.append(o / t)
            print(f"| [{m}x{k}] x [{k}x{n}] | {threads} | {statistics.median(theirs):.1f} | "
                  f"{statistics.median(ours):.1f} | {statistics.median(ratios):.2f} |", flush=True)


if __name__ == "__main__":
    main()
