#!/usr/bin/env python3
"""PyTorch reference for `recurrent bench`: the same workloads, the same JSON lines.

    python3 Benchmarks/pytorch_reference.py --workload train-M --threads 2 [--seconds 3]

Training: Embedding -> nn.GRU/LSTM/RNN -> Linear, vocabulary 65, forward + backward +
clip_grad_norm_(5) + Adam(2e-3), random tokens. Generation: batch 1, one token at a time with
the hidden state carried, greedy, median of --generate-steps steps. Scoring: forward only under
torch.inference_mode(), batch 64 x 256, with the cross-entropy.
"""
import argparse
import json
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

V = 65
SIZES = {"S": (1, 128, 64, 32, 64), "M": (2, 256, 128, 64, 64), "L": (2, 512, 256, 64, 128)}


def workloads():
    w = {}
    for size, (layers, hidden, emb, batch, seq) in SIZES.items():
        w[f"train-{size}"] = ("train", "gru", layers, hidden, emb, batch, seq, V)
        w[f"generate-{size}"] = ("generate", "gru", layers, hidden, emb, 1, 1, V)
        w[f"score-{size}"] = ("score", "gru", layers, hidden, emb, 64, 256, V)
    w["train-M-LSTM"] = ("train", "lstm", 2, 256, 128, 64, 64, V)
    w["train-M-RNN"] = ("train", "rnn-tanh", 2, 256, 128, 64, 64, V)
    # Word level (word_language_model's recipe: batch 20, BPTT 35): PTB's and WikiText-2's vocabularies.
    for vocab, label, width in ((10000, "W10k", 200), (33278, "W33k", 650)):
        for cell, suffix in (("gru", ""), ("lstm", "-LSTM")):
            w[f"train-{label}-2x{width}{suffix}"] = ("train", cell, 2, width, width, 20, 35, vocab)
    return w


class Model(nn.Module):
    def __init__(self, cell, layers, hidden, emb, vocab=V):
        super().__init__()
        self.encoder = nn.Embedding(vocab, emb)
        if cell == "lstm":
            self.rnn = nn.LSTM(emb, hidden, layers)
        elif cell == "gru":
            self.rnn = nn.GRU(emb, hidden, layers)
        else:
            self.rnn = nn.RNN(emb, hidden, layers, nonlinearity="tanh")
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, x, h=None):
        out, h = self.rnn(self.encoder(x), h)
        return self.decoder(out), h


def forward_flops_per_token(cell, layers, hidden, emb, vocab=V):
    g = {"lstm": 4, "gru": 3}.get(cell, 1) * hidden
    return sum(2 * g * ((emb if l == 0 else hidden) + hidden) for l in range(layers)) + 2 * hidden * vocab


def run(name, seconds, generate_steps, threads, autocast=False):
    kind, cell, layers, hidden, emb, batch, seq, V = workloads()[name]
    # --autocast: torch.autocast("cpu", dtype=torch.bfloat16) around forward and loss (PyTorch's
    # mixed precision on CPU; which ops it lowers to bf16 is PyTorch's choice).
    amp = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast)
    torch.manual_seed(1)
    model = Model(cell, layers, hidden, emb, V)
    result = {"workload": name, "implementation": "pytorch", "threads": threads, "autocast_bf16": autocast,
              "tokens_per_second": None, "gflops": None, "ms_per_token": None}
    if kind == "train":
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        data = torch.randint(0, V, (seq + 1, batch))
        h = None

        def step(h):
            with amp():
                logits, h = model(data[:-1], h)
                loss = F.cross_entropy(logits.view(-1, V).float(), data[1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            return tuple(x.detach() for x in h) if isinstance(h, tuple) else h.detach()

        for _ in range(2):
            h = step(h)
        start, steps = time.perf_counter(), 0
        while time.perf_counter() - start < seconds or steps < 3:
            h = step(h)
            steps += 1
        rate = steps * batch * seq / (time.perf_counter() - start)
        result["tokens_per_second"] = rate
        result["gflops"] = rate * 3 * forward_flops_per_token(cell, layers, hidden, emb, V) / 1e9
    elif kind == "generate":
        model.eval()
        times = []
        with torch.inference_mode():
            token, h = torch.zeros(1, 1, dtype=torch.long), None
            for i in range(generate_steps + 20):
                t0 = time.perf_counter()
                with amp():
                    logits, h = model(token, h)
                token = logits.argmax(dim=-1)
                if i >= 20:
                    times.append(time.perf_counter() - t0)
        result["ms_per_token"] = statistics.median(times) * 1e3
    else:
        model.eval()
        data = torch.randint(0, V, (seq, batch))
        with torch.inference_mode(), amp():
            model(data)
            start, passes = time.perf_counter(), 0
            while time.perf_counter() - start < seconds or passes < 2:
                logits, _ = model(data)
                F.cross_entropy(logits.view(-1, V).float(), data.reshape(-1))
                passes += 1
        rate = passes * batch * seq / (time.perf_counter() - start)
        result["tokens_per_second"] = rate
        result["gflops"] = rate * forward_flops_per_token(cell, layers, hidden, emb, V) / 1e9
    result["max_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", action="append", default=[])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--generate-steps", type=int, default=500)
    parser.add_argument("--autocast", action="store_true", help="torch.autocast to bfloat16 on CPU")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.workload or list(workloads()):
        print(json.dumps(run(name, args.seconds, args.generate_steps, args.threads, args.autocast)), flush=True)


if __name__ == "__main__":
    main()
