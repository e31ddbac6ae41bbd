#!/usr/bin/env python3
"""1 process against N ranks of data-parallel training on this machine (issue 15, item 7).

Builds recurrent with the MPI trait (Tools/mpi_check.sh's scratch folder) and trains the bench's
train-M model (2x256 GRU, embedding 128, T=64) for --steps steps, three ways:
  one process, --batch B, all cores as threads;
  N ranks, the same global --batch B (strong scaling: B/N rows per rank), cores/N threads each;
  N ranks, --batch N*B (weak scaling: B rows per rank).
Reports training tokens/s (from train --json, the last step event) and the time each rank spent
in the gradient allreduce per step (the allreduce event), alternating the runs --rounds times.
Usage: python3 Benchmarks/mpi_scaling.py [--ranks 2] [--steps 40] [--rounds 2] [--mca ...]
"""
import argparse, json, os, subprocess, sys, tempfile

p = argparse.ArgumentParser()
p.add_argument("--ranks", type=int, default=2)
p.add_argument("--steps", type=int, default=40)
p.add_argument("--rounds", type=int, default=2)
p.add_argument("--batch", type=int, default=64)
p.add_argument("--out", default=None, help="append JSON lines here")
p.add_argument("--mca", nargs="*", default=[], help="extra mpirun options")
a = p.parse_args()

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
subprocess.run(["swift", "build", "-c", "release", "--traits", "MPI", "--product", "recurrent",
                "--scratch-path", ".build-mpi"], cwd=root, check=True, stdout=subprocess.DEVNULL)
binary = os.path.join(root, ".build-mpi/release/recurrent")
cores = os.cpu_count()
model = ["--hidden", "256", "--embedding", "128", "--seq-len", "64", "--eval-every", "0", "--sample-every", "0",
         "--steps", str(a.steps), "--json", "--precision", "f32"]  # f32: what the README's table measured
mpirun = ["mpirun", "--oversubscribe", "-np", str(a.ranks)] + (["--allow-run-as-root"] if os.getuid() == 0 else []) + a.mca

def run(label, command):
    with tempfile.TemporaryDirectory() as folder:
        out = subprocess.run(command + ["--checkpoint", os.path.join(folder, "m.safetensors")],
                             capture_output=True, text=True, cwd=folder)
    if out.returncode != 0:
        sys.exit(f"{label}: exit {out.returncode}: {out.stderr.strip()}")
    events = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
    steps = [e for e in events if e.get("event") == "step"]
    reduce = next((e for e in events if e.get("event") == "allreduce"), None)
    return {"run": label, "tokens_per_second": steps[-1]["tokens_per_second"],
            "allreduce_ms_per_step": reduce["seconds_per_step"] * 1e3 if reduce else 0.0,
            "slowest_rank_allreduce_ms_per_step": reduce["slowest_rank_seconds_per_step"] * 1e3 if reduce else 0.0}

runs = [
    ("1 process, batch %d, %d threads" % (a.batch, cores), [binary, "train", "--batch", str(a.batch), "--threads", str(cores)] + model),
    ("%d ranks, batch %d (strong)" % (a.ranks, a.batch), mpirun + [binary, "train", "--batch", str(a.batch)] + model),
    ("%d ranks, batch %d (weak)" % (a.ranks, a.batch * a.ranks), mpirun + [binary, "train", "--batch", str(a.batch * a.ranks)] + model),
]
results = {label: [] for label, _ in runs}
for _ in range(a.rounds):
    for label, command in runs:
        results[label].append(run(label, command))
print("| run | tokens/s | vs 1 process | allreduce ms/step (rank 0, slowest) |")
print("|---|---|---|---|")
base = max(r["tokens_per_second"] for r in results[runs[0][0]])
for label, _ in runs:
    best = max(results[label], key=lambda r: r["tokens_per_second"])
    print(f"| {label} | {best['tokens_per_second']:.0f} | {best['tokens_per_second'] / base:.2f} | "
          f"{best['allreduce_ms_per_step']:.2f}, {best['slowest_rank_allreduce_ms_per_step']:.2f} |")
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps(dict(best, ranks=a.ranks, steps=a.steps, cpu_count=cores, mpirun_options=a.mca)) + "\n")
