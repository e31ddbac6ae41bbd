#!/usr/bin/env python3
"""Train and evaluate every model family on one corpus and print one table.

    swift build -c release
    python3 Benchmarks/compare_baselines.py --text Data/tinyshakespeare.txt --seconds 120

The text is split as `recurrent train` splits it (the last 10% of the characters for validation;
nanoGPT's 1,003,854 / 111,540 for tinyshakespeare) into two files in --work, and every model is
scored on the validation file by its own eval command: every character after the first predicted
from all before it, one stream, the same 111,539 predictions for all. Models: Kneser-Ney n-grams of
orders 2-5 (`recurrent ngram train`), an HMM (`recurrent hmm train`), and each recurrent cell
trained by `recurrent train --time-limit SECONDS` with issue 15's defaults (2x256, embedding 64,
batch 64 x 64, f32, no regularizers, fixed windows, Adam 2e-3 constant) and scored by `recurrent eval`.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--binary", default=".build/release/recurrent")
parser.add_argument("--text", default="Data/tinyshakespeare.txt")
parser.add_argument("--work", default="compare-work")
parser.add_argument("--seconds", type=float, default=120, help="training time budget of each recurrent cell")
parser.add_argument("--orders", type=int, nargs="+", default=[2, 3, 4, 5])
parser.add_argument("--cells", nargs="+", default=["rnn-tanh", "lstm", "gru", "gru-reset-before"])
parser.add_argument("--hmm-states", type=int, default=32)
parser.add_argument("--hmm-restarts", type=int, default=2)
parser.add_argument("--hmm-iterations", type=int, default=40)
parser.add_argument("--out", default="compare.jsonl")
args = parser.parse_args()

os.makedirs(args.work, exist_ok=True)
text = open(args.text, encoding="utf-8").read()
cut = int(len(text) * 0.9)
train, valid = os.path.join(args.work, "train.txt"), os.path.join(args.work, "valid.txt")
open(train, "w", encoding="utf-8").write(text[:cut])
open(valid, "w", encoding="utf-8").write(text[cut:])


def run(cmd):
    started = time.time()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()
    return json.loads(out[-1]), time.time() - started


rows = []
results = open(args.out, "w")


def add(model, setting, score, seconds):
    row = {"model": model, "setting": setting, "nats": score["nats_per_token"], "tokens": score["tokens"],
           "seconds": seconds}
    rows.append(row)
    results.write(json.dumps(row) + "\n")
    results.flush()
    print(f"{model} {setting}: {row['nats']:.4f} nats/char ({seconds:.0f} s)", file=sys.stderr)


for n in args.orders:
    arpa = os.path.join(args.work, f"kn{n}.arpa")
    score, seconds = run([args.binary, "ngram", "train", "--text", train, "--valid-text", valid, "--order", str(n),
                          "--out", arpa, "--json"])
    add("Kneser-Ney n-gram", f"order {n}", score, seconds)

hmm = os.path.join(args.work, "hmm.safetensors")
score, seconds = run([args.binary, "hmm", "train", "--text", train, "--valid-text", valid, "--states",
                      str(args.hmm_states), "--restarts", str(args.hmm_restarts), "--iterations",
                      str(args.hmm_iterations), "--out", hmm, "--json"])
add("HMM", f"{args.hmm_states} states, {args.hmm_restarts} restarts, <= {args.hmm_iterations} iterations", score, seconds)

for cell in args.cells:
    ckpt = os.path.join(args.work, f"{cell}.safetensors")
    started = time.time()
    out = subprocess.run([args.binary, "train", "--text", train, "--valid-text", valid, "--cell", cell,
                          "--time-limit", str(args.seconds), "--eval-every", "0", "--sample-every", "0",
                          # issue 15's defaults, given so the table stays what it measured
                          "--batch", "64", "--fixed-windows", "--precision", "f32", "--weight-drop", "0",
                          "--locked-dropout", "0",
                          "--checkpoint", ckpt, "--json"], check=True, capture_output=True, text=True).stdout
    seconds = time.time() - started
    steps = json.loads(out.strip().splitlines()[-1]).get("step")
    score, _ = run([args.binary, "eval", "--checkpoint", ckpt, "--text", valid, "--json"])
    add(cell, f"2x256, {steps} steps in {args.seconds:.0f} s", score, seconds)

print("| model | setting | validation nats/char | bits/char | perplexity | seconds |")
print("|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['model']} | {r['setting']} | {r['nats']:.4f} | {r['nats'] / math.log(2):.4f} | "
          f"{math.exp(r['nats']):.3f} | {r['seconds']:.0f} |")
