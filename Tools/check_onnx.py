#!/usr/bin/env python3
"""Checks `recurrent export --format onnx` against ONNX Runtime (pip install onnx onnxruntime torch).

For every cell kind, 1 and 2 layers: a language model (made by `recurrent train`, a few steps)
is exported; `onnx.checker` must accept the file, and ONNX Runtime's logits and final states
must equal `recurrent predict`'s within 1e-5 relative, from a zero state and from a random
initial state. Then Sequential models (made by `recurrent fit`): every cell, 1-2 layers,
uni/bidirectional, a classifier over features with lengths (ONNX's sequence_lens), an embedding
with mask_zero, and per-step outputs. Last, PyTorch -> Recurrent -> ONNX: a torch RNNModel's
state_dict goes through Tools/export_pytorch.py and `recurrent export`, and ONNX Runtime must
give torch's logits.

Usage: python3 Tools/check_onnx.py [--binary .build/release/recurrent]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

CELLS = ["gru", "gru-reset-before", "lstm", "lstm-peephole", "rnn-tanh", "rnn-relu"]
TOLERANCE = 1e-5


def run(binary, *args):
    result = subprocess.run([binary, *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"recurrent {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def relative_error(ours, theirs):
    scale = max(float(np.max(np.abs(ours))), 1e-30)
    return float(np.max(np.abs(ours.astype(np.float64) - theirs.astype(np.float64)))) / scale


failures = []


def compare(label, ours, theirs):
    if ours.shape != theirs.shape:
        failures.append(f"{label}: shape {theirs.shape} from ONNX Runtime, {ours.shape} from recurrent")
        print(f"FAIL {label}: shapes differ")
        return
    error = relative_error(ours, theirs)
    status = "ok  " if error <= TOLERANCE else "FAIL"
    if error > TOLERANCE:
        failures.append(f"{label}: relative error {error:.2e}")
    print(f"{status} {label}: relative error {error:.2e}")


def session(path):
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the optional inputs' defaults are initializers, by design
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def language_models(binary, work, rng):
    text = os.path.join(work, "text.txt")
    with open(text, "w") as f:
        f.write("the quick brown fox jumps over the lazy dog.\n" * 60)
    for cell in CELLS:
        for layers in (1, 2):
            name = f"lm-{cell}-{layers}"
            ckpt = os.path.join(work, name + ".safetensors")
            run(binary, "train", "--text", text, "--cell", cell, "--layers", str(layers), "--hidden", "24",
                "--embedding", "12", "--batch", "4", "--seq-len", "16", "--steps", "3", "--eval-every", "0",
                "--sample-every", "0", "--checkpoint", ckpt)
            path = os.path.join(work, name + ".onnx")
            run(binary, "export", "--checkpoint", ckpt, "--format", "onnx", "--out", path)
            sess = session(path)
            vocab = sess.get_outputs()[0].shape[2]
            T, B, H = 7, 3, 24
            tokens = rng.integers(0, vocab, size=(T, B)).astype(np.int64)
            np.save(os.path.join(work, "tokens.npy"), tokens)
            lstm = cell.startswith("lstm")
            for with_state in (False, True):
                args = ["predict", "--checkpoint", ckpt, "--x", os.path.join(work, "tokens.npy"),
                        "--out", os.path.join(work, "logits.npy"), "--final-h", os.path.join(work, "h.npy")]
                feeds = {"tokens": tokens}
                if lstm:
                    args += ["--final-c", os.path.join(work, "c.npy")]
                if with_state:
                    h0 = rng.normal(size=(layers, B, H)).astype(np.float32) * 0.5
                    np.save(os.path.join(work, "h0.npy"), h0)
                    args += ["--initial-h", os.path.join(work, "h0.npy")]
                    feeds["initial_h"] = h0
                    if lstm:
                        c0 = rng.normal(size=(layers, B, H)).astype(np.float32) * 0.5
                        np.save(os.path.join(work, "c0.npy"), c0)
                        args += ["--initial-c", os.path.join(work, "c0.npy")]
                        feeds["initial_c"] = c0
                run(binary, *args)
                outputs = sess.run(None, feeds)
                label = f"{name} {'initial state' if with_state else 'zero state'}"
                compare(label + " logits", np.load(os.path.join(work, "logits.npy")), outputs[0])
                compare(label + " final_h", np.load(os.path.join(work, "h.npy")), outputs[1])
                if lstm:
                    compare(label + " final_c", np.load(os.path.join(work, "c.npy")), outputs[2])


def sequential_models(binary, work, rng):
    N, T, F = 12, 9, 3
    x = rng.normal(size=(N, T, F)).astype(np.float32)
    lengths = np.array([T, 1, 5, T, 2, 7, 3, T, 4, 6, 8, 0], dtype=np.int64)
    y = rng.integers(0, 2, size=(N,)).astype(np.float32)
    for name, array in (("x", x), ("y", y), ("lengths", lengths)):
        np.save(os.path.join(work, f"seq_{name}.npy"), array)
    cases = []
    for cell in CELLS:
        for layers in (1, 2):
            for bidirectional in (False, True):
                cases.append((cell, layers, bidirectional))
    for cell, layers, bidirectional in cases:
        name = f"seq-{cell}-{layers}{'-bi' if bidirectional else ''}"
        ckpt = os.path.join(work, name + ".safetensors")
        args = ["fit", "--x", os.path.join(work, "seq_x.npy"), "--y", os.path.join(work, "seq_y.npy"),
                "--lengths", os.path.join(work, "seq_lengths.npy"), "--task", "binary", "--cell", cell,
                "--layers", str(layers), "--hidden", "10", "--dense", "6", "--epochs", "1", "--batch", "4",
                "--checkpoint", ckpt]
        if bidirectional:
            args.append("--bidirectional")
        run(binary, *args)
        path = os.path.join(work, name + ".onnx")
        run(binary, "export", "--checkpoint", ckpt, "--out", path)
        sess = session(path)
        for with_lengths in (True, False):
            out = os.path.join(work, "p.npy")
            predict = ["predict", "--checkpoint", ckpt, "--x", os.path.join(work, "seq_x.npy"), "--out", out]
            feeds = {"x": x}
            if with_lengths:
                predict += ["--lengths", os.path.join(work, "seq_lengths.npy")]
                feeds["lengths"] = lengths.astype(np.int32)
            run(binary, *predict)
            compare(f"{name} {'lengths' if with_lengths else 'full'}", np.load(out), sess.run(None, feeds)[0])

    # Token ids with an embedding and mask_zero (lengths from the ids), per-step outputs.
    V = 20
    ids = rng.integers(1, V, size=(N, T)).astype(np.int64)
    for i, n in enumerate(lengths):
        ids[i, n:] = 0
    np.save(os.path.join(work, "ids.npy"), ids)
    labels = rng.integers(0, 3, size=(N,)).astype(np.int64)
    np.save(os.path.join(work, "labels.npy"), labels)
    steps = rng.normal(size=(N, T, 2)).astype(np.float32)
    np.save(os.path.join(work, "steps.npy"), steps)
    for cell in ("gru", "lstm"):
        for extra, target, task, label in (
            (["--bidirectional"], "labels.npy", "multiclass", "masked ids, bidirectional, softmax"),
            (["--return-sequences"], "steps.npy", "regression", "masked ids, per-step outputs"),
        ):
            name = f"seq-embedding-{cell}-{task}"
            ckpt = os.path.join(work, name + ".safetensors")
            run(binary, "fit", "--x", os.path.join(work, "ids.npy"), "--y", os.path.join(work, target), "--task", task,
                "--cell", cell, "--hidden", "8", "--embedding", "5", "--vocab-size", str(V), "--mask-zero",
                "--epochs", "1", "--batch", "4", "--checkpoint", ckpt, *extra)
            path = os.path.join(work, name + ".onnx")
            run(binary, "export", "--checkpoint", ckpt, "--out", path)
            sess = session(path)
            if [i.name for i in sess.get_inputs()] != ["x"]:
                failures.append(f"{name}: inputs {[i.name for i in sess.get_inputs()]}, expected only x")
            out = os.path.join(work, "p.npy")
            run(binary, "predict", "--checkpoint", ckpt, "--x", os.path.join(work, "ids.npy"), "--out", out)
            compare(f"{name} ({cell}, {label})", np.load(out), sess.run(None, {"x": ids})[0])


def pytorch_round_trip(binary, work, rng):
    import torch

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__))))
    from export_pytorch import RNNModel, export

    for cell in ("gru", "lstm", "rnn-tanh"):
        torch.manual_seed(3)
        model = RNNModel(cell, 30, 16, 16, 2, tie_weights=(cell == "lstm")).eval()
        vocabulary = [chr(ord("a") + i) if i < 26 else str(i) for i in range(30)]
        ckpt = os.path.join(work, f"torch-{cell}.safetensors")
        export(model, vocabulary, "char", ckpt)
        path = os.path.join(work, f"torch-{cell}.onnx")
        run(binary, "export", "--checkpoint", ckpt, "--out", path)
        tokens = rng.integers(0, 30, size=(11, 2)).astype(np.int64)
        with torch.no_grad():
            logits, hidden = model(torch.from_numpy(tokens))
        h = hidden[0] if cell == "lstm" else hidden
        outputs = session(path).run(None, {"tokens": tokens})
        compare(f"PyTorch -> Recurrent -> ONNX ({cell}) logits", logits.numpy(), outputs[0])
        compare(f"PyTorch -> Recurrent -> ONNX ({cell}) final_h", h.numpy(), outputs[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=".build/release/recurrent")
    parser.add_argument("--skip-pytorch", action="store_true", help="skip the PyTorch round trip (no torch installed)")
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as work:
        language_models(args.binary, work, rng)
        sequential_models(args.binary, work, rng)
        if not args.skip_pytorch:
            pytorch_round_trip(args.binary, work, rng)
    print(json.dumps({"onnx": onnx.__version__, "onnxruntime": ort.__version__, "failures": len(failures)}))
    if failures:
        sys.exit("\n".join(failures))


if __name__ == "__main__":
    main()
