#!/usr/bin/env python3
"""Run `recurrent bench` and Benchmarks/pytorch_reference.py alternately and print the median
ratio per workload, with the targets of issue 4 and peak memory.

    pip install torch            # once
    python3 Benchmarks/compare_pytorch.py [--rounds 3] [--seconds 3] [--threads 2]

Each workload runs in a fresh process per implementation and round (so peak RSS is per
workload). Throughput ratios are ours / PyTorch (higher is better); generation ratios are
our ms per token / PyTorch's (lower is better). For train-M and train-L it also measures
numpy's float32 matmul at the model's shapes (the per-step recurrent product [B,H]x[H,G*H] and
the all-steps input product [T*B,I]x[I,G*H], FLOP-weighted) and prints our training GFLOP/s as
a share of that GEMM ceiling.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = {"train-S": (">=", 3.0), "train-M": (">=", 1.7), "train-L": (">=", 1.4), "train-M-LSTM": (">=", 1.05),
           "train-M-RNN": (">=", 1.7), "generate-S": ("<=", 0.2), "generate-M": ("<=", 0.2),
           "generate-L": ("<=", 0.2), "score-S": (">=", 2.0), "score-M": (">=", 2.0), "score-L": (">=", 2.0),
           # Word level (issue 16): 2x200 on 10,000 words >= 1.5, 2x650 on 33,278 >= 1.1.
           "train-W10k-2x200": (">=", 1.5), "train-W10k-2x200-LSTM": (">=", 1.5),
           "train-W33k-2x650": (">=", 1.1), "train-W33k-2x650-LSTM": (">=", 1.1)}
# (layers, hidden, embedding, batch, seq, gates, vocabulary): the products one training step computes.
SHAPES = {"train-M": (2, 256, 128, 64, 64, 3, 65), "train-L": (2, 512, 256, 64, 128, 3, 65),
          "train-W10k-2x200": (2, 200, 200, 20, 35, 3, 10000), "train-W10k-2x200-LSTM": (2, 200, 200, 20, 35, 4, 10000),
          "train-W33k-2x650": (2, 650, 650, 20, 35, 3, 33278), "train-W33k-2x650-LSTM": (2, 650, 650, 20, 35, 4, 33278)}

NUMPY = r"""
import sys, time, numpy as np
m, k, n = map(int, sys.argv[1:4])
a = np.random.rand(m, k).astype(np.float32); b = np.random.rand(k, n).astype(np.float32)
c = a @ b
ts = []
for _ in range(30):
    t = time.perf_counter(); np.matmul(a, b, out=c); ts.append(time.perf_counter() - t)
ts.sort(); print(2.0 * m * n * k / ts[len(ts) // 2] / 1e9)
"""


def run_json(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def numpy_gflops(m, k, n, threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # OpenBLAS's own choice of kernel and blocking
        env.pop(key, None)
    return float(subprocess.run([sys.executable, "-c", NUMPY, str(m), str(k), str(n)], check=True,
                                capture_output=True, text=True, env=env).stdout)


def ceiling(name, threads):
    """numpy's rate on the forward products of one step (input and recurrent projections of each
    layer, and the decoder over all steps at once), weighted by their FLOPs; backward computes
    twice these products at the same shapes, so the share holds for the whole step."""
    layers, hidden, emb, batch, seq, gates, vocab = SHAPES[name]
    gh = gates * hidden
    rec = numpy_gflops(batch, hidden, gh, threads)
    products = []
    for l in range(layers):
        width = emb if l == 0 else hidden
        products.append((2.0 * seq * batch * hidden * gh, rec))
        products.append((2.0 * seq * batch * width * gh, numpy_gflops(seq * batch, width, gh, threads)))
    products.append((2.0 * seq * batch * hidden * vocab, numpy_gflops(seq * batch, hidden, vocab, threads)))
    flops = sum(f for f, _ in products)
    return flops / sum(f / rate for f, rate in products)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workload", action="append", default=[])
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    if not args.no_build:
        subprocess.run(["swift", "build", "-c", "release", "--product", "recurrent"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    ours_bin = os.path.join(ROOT, ".build", "release", "recurrent")
    reference = os.path.join(ROOT, "Benchmarks", "pytorch_reference.py")
    names = args.workload or list(TARGETS)
    print(f"threads {args.threads}, {args.rounds} rounds, median ratio\n")
    print("| workload | PyTorch | Recurrent | ratio | target | met | peak RSS ours / PyTorch | GEMM ceiling share |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        ours, theirs, ratios, rss = [], [], [], []
        generation = name.startswith("generate")
        key = "ms_per_token" if generation else "tokens_per_second"
        for _ in range(args.rounds):
            o = run_json([ours_bin, "bench", "--workload", name, "--threads", str(args.threads),
                          "--seconds", str(args.seconds), "--json"])
            t = run_json([sys.executable, reference, "--workload", name, "--threads", str(args.threads),
                          "--seconds", str(args.seconds)])
            ours.append(o)
            theirs.append(t)
            ratios.append(o[key] / t[key])
            rss.append(o["max_rss_kb"] / t["max_rss_kb"])
        ratio = statistics.median(ratios)
        op, value = TARGETS[name]
        met = ratio >= value if op == ">=" else ratio <= value
        unit = "ms/token" if generation else "tokens/s"
        fmt = "{:.4f} " if generation else "{:.0f} "
        share = ""
        if name in SHAPES:
            gemm = ceiling(name, args.threads)
            ours_gflops = statistics.median(o["gflops"] for o in ours)
            share = f"{ours_gflops:.0f} of {gemm:.0f} GFLOP/s = {100 * ours_gflops / gemm:.0f}%"
        print(f"| {name} | {fmt.format(statistics.median(t[key] for t in theirs))}{unit} | "
              f"{fmt.format(statistics.median(o[key] for o in ours))}{unit} | {ratio:.2f} | {op} {value} | "
              f"{'yes' if met else 'no'} | {statistics.median(rss):.2f} | {share} |", flush=True)


if __name__ == "__main__":
    main()
