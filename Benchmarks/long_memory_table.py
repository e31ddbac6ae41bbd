#!/usr/bin/env python3
"""Run `recurrent task` for every cell and length and print the README's table.

    swift build -c release
    python3 Benchmarks/long_memory_table.py --task adding --lengths 50 100 200 --steps 3000 --lr 3e-3

Each run is one process (`recurrent task TASK --cell C --length T --json ...`); its final JSON
object is kept in --out (JSON lines) and summarised as a markdown table.
"""
import argparse
import json
import subprocess
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--binary", default=".build/release/recurrent")
parser.add_argument("--task", default="adding", choices=["adding", "copy"])
parser.add_argument("--lengths", type=int, nargs="+", default=[50, 100, 200])
parser.add_argument("--cells", nargs="+", default=["rnn-tanh", "lstm", "gru", "gru-reset-before"])
parser.add_argument("--steps", type=int, default=3000)
parser.add_argument("--lr", default="3e-3")
parser.add_argument("--hidden", type=int, default=128)
parser.add_argument("--batch", type=int, default=50)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--out", default="long_memory.jsonl")
args = parser.parse_args()

rows = []
with open(args.out, "w") as out:
    for T in args.lengths:
        for cell in args.cells:
            flag = "--length" if args.task == "adding" else "--delay"
            cmd = [args.binary, "task", args.task, "--cell", cell, flag, str(T), "--steps", str(args.steps),
                   "--lr", args.lr, "--hidden", str(args.hidden), "--batch", str(args.batch),
                   "--threads", str(args.threads), "--json"]
            lines = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()
            final = json.loads(lines[-1])
            out.write(lines[-1] + "\n")
            out.flush()
            rows.append(final)
            print(f"{args.task} T={T} {cell}: {final['test_metric']:.4f} solved_at={final['solved_at_step']} "
                  f"{final['seconds']:.0f} s", file=sys.stderr)

metric = "test MSE" if args.task == "adding" else "test nats/step"
print(f"| T | cell | {metric} after {args.steps} steps (baseline) | solved | first solved at step | seconds |")
print("|---|---|---|---|---|---|")
for r in rows:
    solved = "yes" if r["solved"] else "no"
    at = r["solved_at_step"] if r["solved_at_step"] is not None else "-"
    print(f"| {r['length']} | {r['cell']} | {r['test_metric']:.4f} ({r['baseline']:.3f}) | {solved} | {at} | {r['seconds']:.0f} |")
