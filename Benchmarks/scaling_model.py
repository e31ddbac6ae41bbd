#!/usr/bin/env python3
"""On paper: the expected weak-scaling efficiency of data-parallel training (fixed batch per
rank) with a ring allreduce, from a measured single-machine step time.

Ring allreduce: each rank sends and receives 2(N-1)/N of the gradient's bytes, in 2(N-1) steps of
latency alpha each. Without any overlap of communication and backward (a lower bound; DDP-style
buckets started during backward hide part of it), a step takes compute + allreduce, so the
efficiency is compute / (compute + allreduce). Gradients are float32, one per parameter, counted
from the model's shapes as PyTorch's GRU and our LanguageModel lay them out.

Usage: python3 Benchmarks/scaling_model.py [--alpha-us 30]   (runs `recurrent bench` for the
step times of train-M and train-L on this machine)
"""
import argparse
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {  # name: (layers, hidden, embedding, batch, sequence, vocabulary), as recurrent bench
    "train-M": (2, 256, 128, 64, 64, 65),
    "train-L": (2, 512, 256, 64, 128, 65),
}


def gru_parameters(layers, hidden, embedding, vocabulary):
    total = vocabulary * embedding + vocabulary * hidden + vocabulary  # embedding, decoder weight and bias
    for layer in range(layers):
        width = embedding if layer == 0 else hidden
        total += 3 * hidden * (width + hidden) + 2 * 3 * hidden
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpha-us", type=float, default=30.0, help="latency per ring step, microseconds")
    args = parser.parse_args()
    binary = os.path.join(ROOT, ".build", "release", "recurrent")
    print("| model | parameters | gradient MB | measured step ms (2 cores) | network | N=4 | N=16 | N=64 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (layers, hidden, embedding, batch, sequence, vocabulary) in MODELS.items():
        row = json.loads(subprocess.run([binary, "bench", "--workload", name, "--threads", "2", "--json"],
                                        capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        step = batch * sequence / row["tokens_per_second"]
        parameters = gru_parameters(layers, hidden, embedding, vocabulary)
        size = 4 * parameters
        for gbits in (10, 25):
            bandwidth = gbits * 1e9 / 8
            cells = []
            for n in (4, 16, 64):
                allreduce = 2 * (n - 1) / n * size / bandwidth + 2 * (n - 1) * args.alpha_us * 1e-6
                cells.append(f"{100 * step / (step + allreduce):.1f}% ({allreduce * 1e3:.1f} ms)")
            print(f"| {name} | {parameters:,} | {size / 1e6:.2f} | {step * 1e3:.0f} | {gbits} Gbit/s | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
