#!/usr/bin/env python3
"""Run `recurrent task` for every cell and length and print the README's table.

    swift build -c release
    python3 Benchmarks/long_memory_table.py --task adding --lengths 50 100 200 --steps 3000 --lr 3e-3

Each run is one process (`recurrent task TASK --cell C --length T --json ...`); its final JSON
object is kept in --out (JSON lines) and summarised as a markdown table. A cell may carry extra
flags after a colon, e.g. `lstm:--forget-bias=1` (its row is named `lstm --forget-bias 1`).
With --resume, runs already in --out (same task, length, cell and flags, steps) are kept and only
the missing ones run, so a table cut short can be finished later; every row records the CPU
model and the load average when it started (what else ran).

    python3 Benchmarks/long_memory_table.py --lengths 200 --resume \
      --cells rnn-tanh rnn-relu lstm lstm:--forget-bias=1 gru gru-reset-before --out Benchmarks/results/long_memory_t200.jsonl
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
parser.add_argument("--resume", action="store_true", help="keep the runs already in --out, run the missing ones")
args = parser.parse_args()


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def key(r):
    return (r["task"], r["length"], r["cell"], r.get("flags", ""), r["steps"])


done = {}
if args.resume:
    try:
        for line in open(args.out):
            if line.strip():
                r = json.loads(line)
                done[key(r)] = r
    except FileNotFoundError:
        pass

rows = []
with open(args.out, "a" if args.resume else "w") as out:
    for T in args.lengths:
        for spec in args.cells:
            cell, _, extra = spec.partition(":")
            extra_flags = [f for part in extra.split(",") if part for f in part.split("=", 1)]
            wanted = (args.task, T, cell, " ".join(extra_flags), args.steps)
            if wanted in done:
                rows.append(done[wanted])
                continue
            flag = "--length" if args.task == "adding" else "--delay"
            cmd = [args.binary, "task", args.task, "--cell", cell, flag, str(T), "--steps", str(args.steps),
                   "--lr", args.lr, "--hidden", str(args.hidden), "--batch", str(args.batch),
                   "--threads", str(args.threads), "--json"] + extra_flags
            load = open("/proc/loadavg").read().split()[0] if sys.platform.startswith("linux") else "?"
            lines = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()
            final = json.loads(lines[-1])
            final["flags"] = " ".join(extra_flags)
            final["cpu"] = cpu_model()
            final["load_at_start"] = float(load) if load != "?" else None
            out.write(json.dumps(final, sort_keys=True) + "\n")
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
    name = r["cell"] + (" " + r["flags"] if r.get("flags") else "")
    print(f"| {r['length']} | {name} | {r['test_metric']:.4f} ({r['baseline']:.3f}) | {solved} | {at} | {r['seconds']:.0f} |")
