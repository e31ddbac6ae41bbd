#!/usr/bin/env python3
"""Compare two builds of `recurrent` on every `recurrent bench` workload, alternating them.

    python3 Benchmarks/compare_builds.py OLD_BINARY NEW_BINARY [--rounds 5] [--seconds 3]

Runs `bench --json` with each binary in turn, ROUNDS times (old, new, old, new, ...), plus a
training workload of the reset-before GRU (`--cell gru-reset-before`, M sizes), and prints the
median of each workload per build and the ratio new/old of throughput (tokens per second; for
generation, old ms per token / new ms per token), so above 1 means the new build is faster.
Machines here are shared: only the ratio within one run means anything.
"""
import argparse
import json
import statistics
import subprocess


def bench(binary, extra, seconds):
    out = subprocess.run([binary, "bench", "--json", "--seconds", str(seconds)] + extra,
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--workload", action="append", default=[],
                        help="only these workloads (repeatable); the reset-before run is then left out")
    args = parser.parse_args()
    custom = ["--cell", "gru-reset-before", "--layers", "2", "--hidden", "256", "--embedding", "128",
              "--batch", "64", "--seq-len", "64"]
    results = {"old": {}, "new": {}}
    for _ in range(args.rounds):
        for build in ("old", "new"):
            binary = getattr(args, build)
            runs = [sum((["--workload", w] for w in args.workload), [])] if args.workload else [[], custom]
            for extra in runs:
                for row in bench(binary, extra, args.seconds):
                    name = row["workload"].replace("train-custom", "train-M-GRU-reset-before")
                    value = row["tokens_per_second"] if row["tokens_per_second"] is not None else row["ms_per_token"]
                    results[build].setdefault(name, []).append(value)
    print(f"{'workload':28} {'old':>12} {'new':>12} {'new/old speed':>14}")
    for name in results["old"]:
        old = statistics.median(results["old"][name])
        new = statistics.median(results["new"][name])
        ratio = old / new if name.startswith("generate") else new / old
        print(f"{name:28} {old:12.4g} {new:12.4g} {ratio:14.3f}")


if __name__ == "__main__":
    main()
