#!/usr/bin/env python3
"""Keras 3 models to and from Recurrent `Sequential` checkpoints (pip install keras; any backend,
e.g. KERAS_BACKEND=torch).

    python3 Tools/keras_weights.py import model.keras --out model.safetensors
    python3 Tools/keras_weights.py import model.weights.h5 --architecture model.json --out model.safetensors
    python3 Tools/keras_weights.py export model.safetensors --out model.keras

Then `recurrent predict --checkpoint model.safetensors ...` gives Keras's `model.predict`, and
the other way. Layers: Embedding (mask_zero), SimpleRNN (tanh, relu), GRU (reset_after True and
False), LSTM, Bidirectional (merge_mode="concat"), Dense (linear, relu, sigmoid, tanh, softmax),
Dropout. Anything else, or an option these layers have but Recurrent does not (use_bias=False,
go_backwards, stateful, return_state, another activation, another merge mode, ...), is refused
with one line naming the layer and the option, and nothing is written.

Layouts: Keras stores kernels [in, G*H] (transposed from PyTorch's [G*H, in]); its GRU gates are
z, r, h (PyTorch: r, z, n), its LSTM gates i, f, c, o (the same order as PyTorch); a GRU with
reset_after has a [2, 3H] bias (input, recurrent), every other cell one bias, which becomes
PyTorch's input bias with a zero recurrent bias (and the sum of both on the way back).

Why a Python tool and not a native reader: a .keras file is a zip of a JSON config and an HDF5
weights file, and HDF5 is a large format with no reader in the package list; users who hold
Keras files have Keras, whose own loader also resolves every config default exactly.
"""
import argparse
import json
import os
import struct
import sys
import tempfile

import numpy as np


class Refused(Exception):
    pass


# ---------------------------------------------------------------- safetensors (numpy only)

def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {}, [], 0
    for name, array in tensors:
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = metadata
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * ((8 - len(encoded) % 8) % 8)
    folder = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".keras_weights.")
    with os.fdopen(fd, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for blob in blobs:
            f.write(blob)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # as a plainly created file, not mkstemp's 0600
    os.replace(temporary, path)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise Refused(f"{path}: not a safetensors file")
    (length,) = struct.unpack("<Q", raw[:8])
    if length > len(raw) - 8:
        raise Refused(f"{path}: not a safetensors file")
    header = json.loads(raw[8:8 + length])
    metadata = header.pop("__metadata__", {})
    base = 8 + length
    tensors = {}
    for name, entry in header.items():
        if entry["dtype"] != "F32":
            raise Refused(f"{path}: tensor {name} is {entry['dtype']}, expected F32")
        start, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(raw[base + start:base + end], dtype="<f4").reshape(entry["shape"]).copy()
    return tensors, metadata


# ---------------------------------------------------------------- gate layouts

def keras_to_torch_gates(matrix, kind, units):
    """Rows of a [G*H, ...] PyTorch-layout matrix from Keras's gate order."""
    if kind in ("gru", "gru-reset-before"):
        z, r, h = np.split(matrix, 3, axis=0)
        return np.concatenate([r, z, h], axis=0)
    return matrix  # LSTM i,f,c,o = PyTorch i,f,g,o; SimpleRNN one block


def torch_to_keras_gates(matrix, kind, units):
    if kind in ("gru", "gru-reset-before"):
        r, z, n = np.split(matrix, 3, axis=0)
        return np.concatenate([z, r, n], axis=0)
    return matrix


ACTIVATIONS = {"linear": "none", "relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "softmax": "softmax"}


def activation_name(value):
    return value if isinstance(value, str) else getattr(value, "__name__", str(value))


# ---------------------------------------------------------------- Keras -> Recurrent

def recurrent_kind(layer):
    """Our cell kind for a Keras recurrent layer, refusing options we do not have."""
    import keras

    name = f"layer {layer.name} ({type(layer).__name__})"
    config = layer.get_config()
    for option, allowed in (("go_backwards", False), ("stateful", False), ("return_state", False), ("use_bias", True),
                            ("unroll", False)):
        if config.get(option, allowed) != allowed:
            raise Refused(f"{name}: {option}={config.get(option)} is not supported")
    if isinstance(layer, keras.layers.SimpleRNN):
        activation = activation_name(config["activation"])
        if activation not in ("tanh", "relu"):
            raise Refused(f"{name}: activation={activation} is not supported (tanh or relu)")
        return "rnn-" + activation
    activation = activation_name(config["activation"])
    recurrent_activation = activation_name(config["recurrent_activation"])
    if activation != "tanh" or recurrent_activation != "sigmoid":
        raise Refused(f"{name}: activation={activation}, recurrent_activation={recurrent_activation} "
                      "is not supported (tanh and sigmoid)")
    if isinstance(layer, keras.layers.LSTM):
        return "lstm"
    if isinstance(layer, keras.layers.GRU):
        return "gru" if config["reset_after"] else "gru-reset-before"
    raise Refused(f"{name}: not a supported recurrent layer")


def recurrent_tensors(layer, kind, prefix, suffix):
    weights = [np.asarray(w) for w in layer.get_weights()]
    units = layer.units
    kernel, recurrent, bias = weights
    w_ih = keras_to_torch_gates(kernel.T, kind, units)
    w_hh = keras_to_torch_gates(recurrent.T, kind, units)
    if bias.ndim == 2:  # GRU reset_after: [input bias, recurrent bias]
        b_ih = keras_to_torch_gates(bias[0], kind, units)
        b_hh = keras_to_torch_gates(bias[1], kind, units)
    else:
        b_ih = keras_to_torch_gates(bias, kind, units)
        b_hh = np.zeros_like(b_ih)
    return [(f"{prefix}weight_ih_l0{suffix}", w_ih), (f"{prefix}weight_hh_l0{suffix}", w_hh),
            (f"{prefix}bias_ih_l0{suffix}", b_ih), (f"{prefix}bias_hh_l0{suffix}", b_hh)]


def import_keras(model):
    """(layers config, input_features, tensors) of a Keras Sequential or functional chain."""
    import keras

    layers, tensors, input_features = [], [], None
    chain = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if not chain:
        raise Refused("the model has no layers")
    for index, layer in enumerate(chain):
        prefix = f"layers.{index}."
        name = f"layer {layer.name} ({type(layer).__name__})"
        config = layer.get_config()
        if isinstance(layer, keras.layers.Embedding):
            if index != 0:
                raise Refused(f"{name}: an Embedding is supported only as the first layer")
            (table,) = layer.get_weights()
            layers.append({"embedding": {"vocabularySize": int(table.shape[0]), "outputSize": int(table.shape[1]),
                                         "maskZero": bool(config.get("mask_zero", False)), "trainable": bool(layer.trainable)}})
            tensors.append((prefix + "weight", table))
        elif isinstance(layer, keras.layers.Bidirectional):
            if config.get("merge_mode") != "concat":
                raise Refused(f"{name}: merge_mode={config.get('merge_mode')} is not supported (concat)")
            kind = recurrent_kind(layer.forward_layer)
            backward_kind = recurrent_kind_backward(layer.backward_layer)
            if backward_kind != kind:
                raise Refused(f"{name}: forward and backward layers differ")
            layers.append({"bidirectional": {"_0": {"recurrent": {"kind": kind, "units": int(layer.forward_layer.units),
                                                                  "returnSequences": bool(layer.forward_layer.return_sequences)}}}})
            tensors += recurrent_tensors(layer.forward_layer, kind, prefix, "")
            tensors += recurrent_tensors(layer.backward_layer, kind, prefix, "_reverse")
        elif isinstance(layer, (keras.layers.SimpleRNN, keras.layers.GRU, keras.layers.LSTM)):
            kind = recurrent_kind(layer)
            layers.append({"recurrent": {"kind": kind, "units": int(layer.units),
                                         "returnSequences": bool(config["return_sequences"])}})
            tensors += recurrent_tensors(layer, kind, prefix, "")
        elif isinstance(layer, keras.layers.Dense):
            if not config.get("use_bias", True):
                raise Refused(f"{name}: use_bias=False is not supported")
            activation = activation_name(config["activation"])
            if activation not in ACTIVATIONS:
                raise Refused(f"{name}: activation={activation} is not supported ({', '.join(ACTIVATIONS)})")
            kernel, bias = layer.get_weights()
            layers.append({"dense": {"units": int(kernel.shape[1]), "activation": ACTIVATIONS[activation]}})
            tensors += [(prefix + "weight", kernel.T), (prefix + "bias", bias)]
        elif isinstance(layer, keras.layers.Dropout):
            layers.append({"dropout": {"rate": float(config["rate"])}})
        else:
            raise Refused(f"{name}: this layer is not supported (Embedding, SimpleRNN, GRU, LSTM, Bidirectional, Dense, Dropout)")
    if "embedding" not in layers[0]:
        shape = model.inputs[0].shape if model.inputs else None
        if shape is None or len(shape) != 3 or shape[-1] is None:
            raise Refused("the model's input must be [batch, time, features] with a known feature size")
        input_features = int(shape[-1])
    return layers, input_features, tensors


def recurrent_kind_backward(layer):
    """A Bidirectional's backward layer runs with go_backwards=True by construction; its other
    options are checked as a forward layer's."""
    config = layer.get_config()
    if not config.get("go_backwards", False):
        raise Refused(f"layer {layer.name}: a backward layer that does not go backwards")
    return recurrent_kind_from_config(layer, {**config, "go_backwards": False})


def recurrent_kind_from_config(layer, config):
    original = layer.get_config
    layer.get_config = lambda: config
    try:
        return recurrent_kind(layer)
    finally:
        layer.get_config = original


def command_import(args):
    import keras

    if args.model.endswith(".keras"):
        model = keras.models.load_model(args.model, compile=False)
    else:
        if not args.architecture:
            raise Refused(f"{args.model}: a weights file needs --architecture (the JSON of model.to_json())")
        with open(args.architecture) as f:
            model = keras.models.model_from_json(f.read())
        model.load_weights(args.model)
    layers, input_features, tensors = import_keras(model)
    config = {"layers": layers, "metrics": []}
    if input_features is not None:
        config["input_features"] = input_features
    if args.loss:
        config["loss"] = args.loss
    metadata = {"format": "pt", "recurrent.format": "recurrent-sequential", "recurrent.format_version": "1",
                "recurrent.config": json.dumps(config, separators=(",", ":"))}
    write_safetensors(args.out, tensors, metadata)
    print(f"wrote {args.out}: {len(layers)} layers, {len(tensors)} tensors")


# ---------------------------------------------------------------- Recurrent -> Keras

def export_keras(path):
    import keras

    tensors, metadata = read_safetensors(path)
    if metadata.get("recurrent.format") != "recurrent-sequential":
        raise Refused(f"{path}: not a Sequential checkpoint of recurrent fit (format {metadata.get('recurrent.format')})")
    config = json.loads(metadata["recurrent.config"])
    zoneout = (config.get("regularization") or {}).get("zoneout", 0)
    if zoneout:
        raise Refused(f"{path}: the model uses zoneout {zoneout}, which Keras's recurrent layers do not compute")
    layers_config = config["layers"]
    first = layers_config[0]
    if "embedding" in first:
        inputs = keras.Input(shape=(None,), dtype="int64")
    else:
        inputs = keras.Input(shape=(None, int(config["input_features"])))
    x = inputs
    assignments = []
    for index, entry in enumerate(layers_config):
        prefix = f"layers.{index}."
        (kind, body), = entry.items()
        if kind == "embedding":
            layer = keras.layers.Embedding(body["vocabularySize"], body["outputSize"], mask_zero=body["maskZero"],
                                           trainable=body["trainable"])
            x = layer(x)
            assignments.append((layer, [tensors[prefix + "weight"]]))
        elif kind in ("recurrent", "bidirectional"):
            if kind == "bidirectional" and "recurrent" not in body["_0"]:
                (wrapped,) = body["_0"].keys()
                raise Refused(f"layer {index}: {wrapped} has no Keras layer")
            inner = body["_0"]["recurrent"] if kind == "bidirectional" else body
            cell, units, sequences = inner["kind"], inner["units"], inner["returnSequences"]

            def make(go_backwards=False):
                common = dict(return_sequences=sequences, go_backwards=go_backwards)
                if cell == "lstm":
                    return keras.layers.LSTM(units, **common)
                if cell in ("gru", "gru-reset-before"):
                    return keras.layers.GRU(units, reset_after=(cell == "gru"), **common)
                if cell in ("rnn-tanh", "rnn-relu"):
                    return keras.layers.SimpleRNN(units, activation=cell[4:], **common)
                raise Refused(f"layer {index}: cell {cell} has no Keras layer")

            def weights(suffix):
                w_ih = torch_to_keras_gates(tensors[f"{prefix}weight_ih_l0{suffix}"], cell, units)
                w_hh = torch_to_keras_gates(tensors[f"{prefix}weight_hh_l0{suffix}"], cell, units)
                b_ih = torch_to_keras_gates(tensors[f"{prefix}bias_ih_l0{suffix}"], cell, units)
                b_hh = torch_to_keras_gates(tensors[f"{prefix}bias_hh_l0{suffix}"], cell, units)
                bias = np.stack([b_ih, b_hh]) if cell == "gru" else b_ih + b_hh
                return [w_ih.T, w_hh.T, bias]

            if kind == "bidirectional":
                layer = keras.layers.Bidirectional(make(), backward_layer=make(go_backwards=True), merge_mode="concat")
                x = layer(x)
                assignments.append((layer, weights("") + weights("_reverse")))
            else:
                layer = make()
                x = layer(x)
                assignments.append((layer, weights("")))
        elif kind == "dense":
            activation = {v: k for k, v in ACTIVATIONS.items()}[body["activation"]]
            layer = keras.layers.Dense(body["units"], activation=activation)
            x = layer(x)
            assignments.append((layer, [tensors[prefix + "weight"].T, tensors[prefix + "bias"]]))
        elif kind == "dropout":
            x = keras.layers.Dropout(body["rate"])(x)
        else:
            raise Refused(f"layer {index}: {kind} has no Keras layer")
    model = keras.Model(inputs, x)
    for layer, values in assignments:
        layer.set_weights([np.asarray(v, dtype=np.float32) for v in values])
    return model


def command_export(args):
    model = export_keras(args.checkpoint)
    if not args.out.endswith(".keras"):
        raise Refused(f"--out {args.out}: Keras 3 saves whole models as .keras files")
    folder = os.path.dirname(os.path.abspath(args.out))
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".keras_weights.", suffix=".keras")
    os.close(fd)
    try:
        model.save(temporary)
        os.replace(temporary, args.out)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    print(f"wrote {args.out}: {len(model.layers)} layers")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    importing = commands.add_parser("import", help="a Keras model as a Sequential checkpoint")
    importing.add_argument("model", help="a .keras file, or a .weights.h5 file with --architecture")
    importing.add_argument("--architecture", help="the model's JSON (model.to_json()) for a .weights.h5 file")
    importing.add_argument("--loss", choices=["mse", "binary_crossentropy", "categorical_crossentropy"],
                           help="the loss to store (predict needs none)")
    importing.add_argument("--out", required=True)
    exporting = commands.add_parser("export", help="a Sequential checkpoint as a Keras model (.keras)")
    exporting.add_argument("checkpoint")
    exporting.add_argument("--out", required=True)
    args = parser.parse_args()
    try:
        if args.command == "import":
            command_import(args)
        else:
            command_export(args)
    except Refused as refusal:
        print(f"Error: {refusal}", file=sys.stderr)
        sys.exit(1)
    except (OSError, ValueError, KeyError) as error:
        print(f"Error: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
