#!/usr/bin/env python3
"""Draw validation curves of `recurrent train` runs into one SVG (no plotting library needed).

Each input is a JSON line of Benchmarks/recipe_search.sh (its "curve": [[step, val_loss], ...])
or a metrics file a run wrote beside its checkpoint (`model.metrics.jsonl`: its "eval" events).

    python3 Benchmarks/plot_curves.py --out curves.svg --title "..." \
        --run "label=regularized,file=a.jsonl,line=1" --run "label=none,file=b.metrics.jsonl"
    [--perplexity]   plot exp(loss), for word models

`line=N` picks the N-th line (from 1) of a recipe_search.sh output; without it the file is read
as a metrics file.
"""
import argparse
import json
import math

COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def curve(spec):
    fields = dict(part.split("=", 1) for part in spec.split(","))
    lines = [json.loads(l) for l in open(fields["file"]) if l.strip()]
    if "line" in fields:
        points = lines[int(fields["line"]) - 1]["curve"]
    else:
        points = [[e["step"], e["val_loss"]] for e in lines if e.get("event") == "eval"]
    return fields["label"], points


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", action="append", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--title", default="")
    parser.add_argument("--perplexity", action="store_true")
    args = parser.parse_args()
    runs = [curve(r) for r in args.run]
    if args.perplexity:
        runs = [(label, [[s, math.exp(v)] for s, v in pts]) for label, pts in runs]
    xs = [s for _, pts in runs for s, _ in pts]
    ys = [v for _, pts in runs for _, v in pts]
    x0, x1 = 0, max(xs)
    y0, y1 = min(ys), max(ys)
    pad = (y1 - y0) * 0.05 or 0.01
    y0, y1 = y0 - pad, y1 + pad
    W, H, L, R, T, B = 640, 400, 70, 20, 40, 40

    def px(x):
        return L + (x - x0) / (x1 - x0) * (W - L - R)

    def py(y):
        return H - B - (y - y0) / (y1 - y0) * (H - T - B)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
           f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>',
           f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{args.title}</text>',
           f'<text x="{(L + W - R) / 2}" y="{H - 8}" text-anchor="middle">step</text>',
           f'<text x="12" y="{T - 10}">validation {"perplexity" if args.perplexity else "nats/token"}</text>']
    for k in range(5):
        y = y0 + (y1 - y0) * k / 4
        out.append(f'<text x="{L - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.3f}</text>')
        out.append(f'<line x1="{L}" y1="{py(y):.1f}" x2="{W - R}" y2="{py(y):.1f}" stroke="#eee"/>')
        x = x0 + (x1 - x0) * k / 4
        out.append(f'<text x="{px(x):.1f}" y="{H - B + 16}" text-anchor="middle">{int(x)}</text>')
    for i, (label, pts) in enumerate(runs):
        color = COLORS[i % len(COLORS)]
        path = " ".join(f'{"M" if j == 0 else "L"}{px(s):.1f},{py(v):.1f}' for j, (s, v) in enumerate(pts))
        out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        best = min(v for _, v in pts)
        out.append(f'<text x="{W - R - 8}" y="{T + 16 + 16 * i}" text-anchor="end" fill="{color}">{label} (best {best:.4g})</text>')
    out.append("</svg>")
    with open(args.out, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
