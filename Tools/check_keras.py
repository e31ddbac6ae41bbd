#!/usr/bin/env python3
"""Checks Tools/keras_weights.py both ways against Keras itself (pip install keras torch; runs
with KERAS_BACKEND=torch unless another backend is set).

Keras -> Recurrent: Keras models with random weights (biases too) over random inputs, masked
ones included: Embedding(mask_zero), SimpleRNN (tanh, relu), GRU (reset_after True and False),
LSTM, Bidirectional(concat), Dense, Dropout; `model.predict` and `recurrent predict` on the
imported checkpoint agree within 1e-5 relative. Recurrent -> Keras: models trained by
`recurrent fit` (every cell, bidirectional, embedding with mask_zero) are exported and Keras's
predictions agree with ours. Round trip Keras -> Recurrent -> Keras: every weight comes back
bit for bit. Refusals: unsupported layers and options fail with one line and write nothing.

Usage: python3 Tools/check_keras.py [--binary .build/release/recurrent]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402
import numpy as np  # noqa: E402

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keras_weights.py")
TOLERANCE = 1e-5
failures = []


def run(*args, expect_failure=False):
    result = subprocess.run(list(args), capture_output=True, text=True)
    if expect_failure:
        return result
    if result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed: {result.stderr.strip()}")
    return result


def compare(label, ours, theirs):
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if ours.shape != theirs.shape:
        failures.append(f"{label}: shapes {ours.shape} and {theirs.shape}")
        print(f"FAIL {label}: shapes {ours.shape} and {theirs.shape}")
        return
    error = float(np.max(np.abs(ours - theirs))) / max(float(np.max(np.abs(theirs))), 1e-30)
    if np.ptp(theirs) == 0:
        failures.append(f"{label}: every prediction is the same, which checks nothing")
    if error > TOLERANCE:
        failures.append(f"{label}: relative error {error:.2e}")
    print(f"{'ok  ' if error <= TOLERANCE else 'FAIL'} {label}: relative error {error:.2e}")


def randomize(model, rng):
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            layer.set_weights([rng.normal(scale=0.4, size=w.shape).astype(np.float32) for w in weights])


def keras_models():
    """(name, model builder, input kind)."""
    L = keras.layers
    V, F = 17, 3
    return [
        ("embedding-mask-gru", lambda: keras.Sequential([keras.Input((None,), dtype="int64"), L.Embedding(V, 6, mask_zero=True),
                                                         L.GRU(8), L.Dense(1, activation="sigmoid")]), "ids"),
        ("gru-reset-before", lambda: keras.Sequential([keras.Input((None, F)), L.GRU(7, reset_after=False, return_sequences=True),
                                                       L.GRU(5, reset_after=False), L.Dense(3, activation="softmax")]), "features"),
        ("lstm-dropout", lambda: keras.Sequential([keras.Input((None, F)), L.LSTM(9, return_sequences=True), L.Dropout(0.3),
                                                   L.LSTM(4), L.Dense(2)]), "features"),
        ("simple-rnn", lambda: keras.Sequential([keras.Input((None, F)), L.SimpleRNN(6, return_sequences=True),
                                                 L.SimpleRNN(5, activation="relu"), L.Dense(4, activation="tanh"),
                                                 L.Dense(1)]), "features"),
        ("bidirectional-masked", lambda: keras.Sequential([keras.Input((None,), dtype="int64"), L.Embedding(V, 5, mask_zero=True),
                                                           L.Bidirectional(L.LSTM(6, return_sequences=True)),
                                                           L.Bidirectional(L.GRU(4)), L.Dense(3, activation="tanh"),
                                                           L.Dense(1, activation="sigmoid")]), "ids"),
        ("bidirectional-sequences", lambda: keras.Sequential([keras.Input((None, F)),
                                                              L.Bidirectional(L.SimpleRNN(5, return_sequences=True)),
                                                              L.Dense(2)]), "features"),
        ("masked-sequences", lambda: keras.Sequential([keras.Input((None,), dtype="int64"), L.Embedding(V, 4, mask_zero=True),
                                                       L.GRU(6, return_sequences=True), L.Dense(2)]), "ids"),
    ]


def inputs(kind, rng, N=10, T=8, V=17, F=3):
    if kind == "features":
        return rng.normal(size=(N, T, F)).astype(np.float32)
    ids = rng.integers(1, V, size=(N, T)).astype(np.int64)
    lengths = rng.integers(1, T + 1, size=N)
    lengths[0] = T
    for i, n in enumerate(lengths):
        ids[i, n:] = 0  # right padding
    return ids


def masked_steps(x):
    """Where the ids are padding (Keras leaves masked outputs of sequences undefined for us:
    it repeats the last real output, Recurrent writes zeros; both only at padded steps)."""
    return x == 0


def keras_to_recurrent(binary, work, rng):
    for name, build, kind in keras_models():
        model = build()
        randomize(model, rng)
        x = inputs(kind, rng)
        path = os.path.join(work, name + ".keras")
        model.save(path)
        ckpt = os.path.join(work, name + ".safetensors")
        run(sys.executable, TOOL, "import", path, "--out", ckpt)
        np.save(os.path.join(work, "x.npy"), x)
        run(binary, "predict", "--checkpoint", ckpt, "--x", os.path.join(work, "x.npy"), "--out", os.path.join(work, "p.npy"))
        ours = np.load(os.path.join(work, "p.npy"))
        theirs = model.predict(x, verbose=0)
        if theirs.ndim == 3 and kind == "ids":
            keep = ~masked_steps(x)
            ours, theirs = ours[keep], theirs[keep]
        compare(f"Keras -> Recurrent {name}", ours, theirs)
        # Keras -> Recurrent -> Keras: every weight back bit for bit.
        back = os.path.join(work, name + ".back.keras")
        run(sys.executable, TOOL, "export", ckpt, "--out", back)
        reloaded = keras.models.load_model(back, compile=False)
        original = [w for w in model.get_weights()]
        returned = [w for w in reloaded.get_weights()]
        same = len(original) == len(returned) and all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(original, returned))
        if not same:
            failures.append(f"round trip {name}: weights differ")
        print(f"{'ok  ' if same else 'FAIL'} Keras -> Recurrent -> Keras {name}: {len(original)} weight arrays identical")
        if weights_only_case(name):
            h5 = os.path.join(work, name + ".weights.h5")
            model.save_weights(h5)
            with open(os.path.join(work, name + ".json"), "w") as f:
                f.write(model.to_json())
            ckpt2 = os.path.join(work, name + ".h5.safetensors")
            run(sys.executable, TOOL, "import", h5, "--architecture", os.path.join(work, name + ".json"), "--out", ckpt2)
            run(binary, "predict", "--checkpoint", ckpt2, "--x", os.path.join(work, "x.npy"), "--out", os.path.join(work, "p2.npy"))
            compare(f"Keras (.weights.h5 + JSON) -> Recurrent {name}", np.load(os.path.join(work, "p2.npy")),
                    model.predict(x, verbose=0))


def weights_only_case(name):
    return name == "lstm-dropout"


def recurrent_to_keras(binary, work, rng):
    N, T, F = 12, 7, 3
    x = rng.normal(size=(N, T, F)).astype(np.float32)
    y = rng.integers(0, 2, size=(N,)).astype(np.float32)
    np.save(os.path.join(work, "fx.npy"), x)
    np.save(os.path.join(work, "fy.npy"), y)
    ids = inputs("ids", rng, N=N, T=T)
    np.save(os.path.join(work, "fids.npy"), ids)
    for cell in ("gru", "gru-reset-before", "lstm", "rnn-tanh", "rnn-relu"):
        for extra, data, label in ((["--bidirectional", "--layers", "2"], "fx.npy", "features, 2 bidirectional layers"),
                                   (["--embedding", "4", "--vocab-size", "17", "--mask-zero"], "fids.npy", "masked ids")):
            ckpt = os.path.join(work, f"fit-{cell}.safetensors")
            run(binary, "fit", "--x", os.path.join(work, data), "--y", os.path.join(work, "fy.npy"), "--task", "binary",
                "--cell", cell, "--hidden", "6", "--epochs", "2", "--batch", "4", "--checkpoint", ckpt, *extra)
            path = os.path.join(work, f"fit-{cell}.keras")
            run(sys.executable, TOOL, "export", ckpt, "--out", path)
            model = keras.models.load_model(path, compile=False)
            out = os.path.join(work, "q.npy")
            run(binary, "predict", "--checkpoint", ckpt, "--x", os.path.join(work, data), "--out", out)
            feed = np.load(os.path.join(work, data))
            compare(f"Recurrent -> Keras {cell} ({label})", np.load(out), model.predict(feed, verbose=0))


def refusals(work):
    L = keras.layers
    cases = [
        ("conv", keras.Sequential([keras.Input((None, 3)), L.Conv1D(4, 2), L.GRU(3)]), "Conv1D"),
        ("no-bias", keras.Sequential([keras.Input((None, 3)), L.GRU(3), L.Dense(1, use_bias=False)]), "use_bias"),
        ("backwards", keras.Sequential([keras.Input((None, 3)), L.LSTM(3, go_backwards=True)]), "go_backwards"),
        ("sum", keras.Sequential([keras.Input((None, 3)), L.Bidirectional(L.GRU(3), merge_mode="sum")]), "merge_mode"),
        ("hard-sigmoid", keras.Sequential([keras.Input((None, 3)), L.GRU(3, recurrent_activation="hard_sigmoid")]),
         "recurrent_activation"),
    ]
    for name, model, words in cases:
        path = os.path.join(work, f"refuse-{name}.keras")
        model.save(path)
        out = os.path.join(work, f"refuse-{name}.safetensors")
        result = run(sys.executable, TOOL, "import", path, "--out", out, expect_failure=True)
        good = result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1 and words in result.stderr \
            and not os.path.exists(out)
        if not good:
            failures.append(f"refusal {name}: status {result.returncode}, stderr {result.stderr.strip()!r}")
        print(f"{'ok  ' if good else 'FAIL'} refused {name}: {result.stderr.strip()}")


def fixtures(folder):
    """Small Keras models imported as checkpoints, with their inputs and Keras's predictions, for
    `swift test` (Tests/SequenceModelsTests/Fixtures), so the import is checked without Python."""
    rng = np.random.default_rng(23)
    chosen = {"bidirectional-masked": "keras_bidirectional_masked", "gru-reset-before": "keras_gru_reset_before",
              "simple-rnn": "keras_simple_rnn"}
    for name, build, kind in keras_models():
        if name not in chosen:
            continue
        model = build()
        randomize(model, rng)
        x = inputs(kind, rng, N=5, T=6)
        with tempfile.TemporaryDirectory() as work:
            path = os.path.join(work, "m.keras")
            model.save(path)
            run(sys.executable, TOOL, "import", path, "--out", os.path.join(folder, chosen[name] + ".safetensors"))
        predictions = model.predict(x, verbose=0)
        with open(os.path.join(folder, chosen[name] + ".json"), "w") as f:
            json.dump({"x": x.astype(np.float64).ravel().tolist(), "x_shape": list(x.shape), "predictions": predictions.astype(np.float64).ravel().tolist(),
                       "predictions_shape": list(predictions.shape), "keras": keras.__version__}, f)
        print(f"wrote {chosen[name]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=".build/release/recurrent")
    parser.add_argument("--fixtures", help="write the Swift tests' Keras fixtures into this folder and stop")
    args = parser.parse_args()
    if args.fixtures:
        fixtures(args.fixtures)
        return
    rng = np.random.default_rng(11)
    with tempfile.TemporaryDirectory() as work:
        keras_to_recurrent(args.binary, work, rng)
        recurrent_to_keras(args.binary, work, rng)
        refusals(work)
    print(json.dumps({"keras": keras.__version__, "backend": keras.backend.backend(), "failures": len(failures)}))
    if failures:
        sys.exit("\n".join(failures))


if __name__ == "__main__":
    main()
