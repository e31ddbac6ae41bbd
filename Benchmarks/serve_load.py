#!/usr/bin/env python3
"""Load test of recurrent-server on this machine (127.0.0.1 only; bounded in time).

Trains (or takes) a model of the bench's M size (2x256 GRU, embedding 128, the bundled corpus's
characters), starts `recurrent-server --port 0`, and at 1, 8, 64 and 256 concurrent streaming
clients (Python httpx, asyncio; each client sends completions one after another with
`max_tokens` tokens) measures for `--seconds` each: aggregate tokens/s, time to first token
(p50/p99), inter-token latency (p50/p99), the spread of tokens per stream (fairness), the server's
share of busy time in the model step (from /metrics), and the CPU both sides used (they share the
2 cores). Beside it, `recurrent bench` gives the model's own rate without HTTP at the same batch
sizes. Prints a Markdown table and writes the rows as JSON lines.

Usage: pip install httpx; python3 Benchmarks/serve_load.py [--checkpoint M.safetensors] [--seconds 10]
"""
import argparse
import asyncio
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, ".build", "release")


def percentile(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def cpu_seconds_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def metric(text, name):
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def client_loop(port, deadline, max_tokens, stats, seed):
    """One client: completions one after another over raw sockets (Connection: close), counting
    tokens by their SSE events in the bytes as they arrive, with almost no parsing, so the
    client's own CPU use stays small beside the server's."""
    while time.monotonic() < deadline:
        body = json.dumps({"prompt": "ROMEO:", "max_tokens": max_tokens, "stream": True, "seed": seed,
                           "temperature": 0.8}).encode()
        seed += 1000
        sent = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
        last = None
        tokens = 0
        status = None
        tail = b""
        while True:
            data = await reader.read(1 << 16)
            if not data:
                break
            now = time.monotonic()
            if status is None:
                status = data[9:12]
            chunk = tail + data
            count = chunk.count(b'"finish_reason":null')
            tail = chunk[-32:]
            count -= tail.count(b'"finish_reason":null')  # counted again with the next read
            if count > 0:
                if last is None:
                    stats["ttft"].append(now - sent)
                    stats["itl"].extend([0.0] * (count - 1))
                else:
                    stats["itl"].append(now - last)
                    stats["itl"].extend([0.0] * (count - 1))
                last = now
                tokens += count
        tokens += tail.count(b'"finish_reason":null')
        writer.close()
        if status != b"200":
            stats["errors"] += 1
            continue
        stats["tokens"] += tokens
        stats["per_request"].append(tokens)


async def level(port, streams, seconds, max_tokens, server_pid):
    stats = {"ttft": [], "itl": [], "tokens": 0, "errors": 0, "per_request": []}
    async with httpx.AsyncClient(timeout=120) as http:
        before = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        cpu_client = resource.getrusage(resource.RUSAGE_SELF)
        cpu_server = cpu_seconds_of(server_pid)
        start = time.monotonic()
        deadline = start + seconds
        await asyncio.gather(*(client_loop(port, deadline, max_tokens, stats, i) for i in range(streams)))
        wall = time.monotonic() - start
        after_client = resource.getrusage(resource.RUSAGE_SELF)
        server_cpu = cpu_seconds_of(server_pid) - cpu_server
        after = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    step = metric(after, "recurrent_step_time_seconds_total") - metric(before, "recurrent_step_time_seconds_total")
    busy = metric(after, "recurrent_busy_seconds_total") - metric(before, "recurrent_busy_seconds_total")
    client_cpu = (after_client.ru_utime - cpu_client.ru_utime) + (after_client.ru_stime - cpu_client.ru_stime)
    return {
        "streams": streams, "seconds": round(wall, 2), "tokens": stats["tokens"],
        "tokens_per_second": stats["tokens"] / wall, "requests": len(stats["per_request"]), "errors": stats["errors"],
        "ttft_p50_ms": percentile(stats["ttft"], 0.5) * 1e3, "ttft_p99_ms": percentile(stats["ttft"], 0.99) * 1e3,
        "itl_p50_ms": percentile(stats["itl"], 0.5) * 1e3, "itl_p99_ms": percentile(stats["itl"], 0.99) * 1e3,
        "step_share": step / busy if busy > 0 else float("nan"),
        "server_cpu_cores": server_cpu / wall, "client_cpu_cores": client_cpu / wall,
        "min_tokens_per_request": min(stats["per_request"], default=0),
        "max_tokens_per_request": max(stats["per_request"], default=0),
    }


def bench_rate(workload):
    out = subprocess.run([os.path.join(BIN, "recurrent"), "bench", "--workload", workload, "--threads", "2", "--json"],
                         capture_output=True, text=True, check=True).stdout
    row = json.loads(out.strip().splitlines()[-1])
    if row.get("tokens_per_second"):
        return row["tokens_per_second"]
    return 1e3 / row["ms_per_token"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="an M-sized model (default: train one for 100 steps)")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--max-tokens", type=int, default=1000)
    parser.add_argument("--levels", default="1,8,64,256")
    parser.add_argument("--out", default=os.path.join(ROOT, "Benchmarks", "results", "serve_load.jsonl"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        checkpoint = args.checkpoint
        if not checkpoint:
            checkpoint = os.path.join(work, "m.safetensors")
            subprocess.run([os.path.join(BIN, "recurrent"), "train", "--layers", "2", "--hidden", "256", "--embedding", "128",
                            "--steps", "100", "--eval-every", "0", "--sample-every", "0", "--checkpoint", checkpoint],
                           check=True, capture_output=True)
        server = subprocess.Popen([os.path.join(BIN, "recurrent-server"), "--checkpoint", checkpoint, "--port", "0",
                                   "--max-streams", "256"], stdout=subprocess.PIPE, text=True)
        try:
            line = server.stdout.readline()
            port = int(re.search(r":(\d+)$", line.strip()).group(1))
            rows = []
            for streams in [int(x) for x in args.levels.split(",")]:
                row = asyncio.run(level(port, streams, args.seconds, args.max_tokens, server.pid))
                workload = "generate-M" if streams == 1 else f"generate-M-b{streams}"
                try:
                    row["model_only_tokens_per_second"] = bench_rate(workload)
                except subprocess.CalledProcessError:
                    row["model_only_tokens_per_second"] = float("nan")
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    single = rows[0]["tokens_per_second"] if rows and rows[0]["streams"] == 1 else float("nan")
    print()
    print("| streams | tokens/s (served) | x single stream | model alone, tokens/s | TTFT p50 / p99 ms | inter-token p50 / p99 ms | "
          "step share | server CPU cores | client CPU cores | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['streams']} | {r['tokens_per_second']:.0f} | {r['tokens_per_second'] / single:.1f} | "
              f"{r['model_only_tokens_per_second']:.0f} | {r['ttft_p50_ms']:.1f} / {r['ttft_p99_ms']:.1f} | "
              f"{r['itl_p50_ms']:.2f} / {r['itl_p99_ms']:.2f} | {r['step_share']:.2f} | {r['server_cpu_cores']:.2f} | "
              f"{r['client_cpu_cores']:.2f} | {r['errors']} |")


if __name__ == "__main__":
    main()
