#!/usr/bin/env python3
"""Export a PyTorch language model to a Recurrent checkpoint (safetensors) that
`recurrent eval` and `recurrent generate` read.

The model is PyTorch's `word_language_model` example `RNNModel` (Embedding -> nn.RNN/LSTM/GRU
-> Linear), whose `state_dict` names (`encoder.weight`, `rnn.weight_ih_l0`, ...,
`decoder.weight`, `decoder.bias`) are the checkpoint's tensor names. The vocabulary (tokens in
id order) and the configuration go into the safetensors metadata.

Export a trained model's state_dict (saved with torch.save(model.state_dict(), PATH)):
    python3 Tools/export_pytorch.py --state-dict model.pt --cell gru --vocab vocab.json \
        --tokenizer char --out model.safetensors

Make the committed test fixtures (random models, with PyTorch's perplexity on a text):
    python3 Tools/export_pytorch.py --fixtures Tests/TrainingTests/Fixtures
"""
import argparse
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F


class RNNModel(nn.Module):
    """PyTorch's word_language_model RNNModel (no dropout at evaluation)."""

    def __init__(self, cell, ntoken, ninp, nhid, nlayers, dropout=0.0, tie_weights=False):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        if cell == "lstm":
            self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout)
        elif cell == "gru":
            self.rnn = nn.GRU(ninp, nhid, nlayers, dropout=dropout)
        elif cell in ("rnn-tanh", "rnn-relu"):
            self.rnn = nn.RNN(ninp, nhid, nlayers, nonlinearity=cell[4:], dropout=dropout)
        else:
            raise ValueError(f"PyTorch has no module for cell {cell}")
        self.decoder = nn.Linear(nhid, ntoken)
        if tie_weights:
            if nhid != ninp:
                raise ValueError("tied weights need nhid == ninp")
            self.decoder.weight = self.encoder.weight
        self.cell, self.ntoken, self.ninp, self.nhid, self.nlayers = cell, ntoken, ninp, nhid, nlayers
        self.dropout, self.tied = dropout, tie_weights

    def forward(self, inputs, hidden=None):
        emb = self.drop(self.encoder(inputs))
        output, hidden = self.rnn(emb, hidden)
        return self.decoder(self.drop(output)), hidden


def write_safetensors(path, tensors, metadata):
    """The safetensors layout: u64 header length, JSON header, raw little-endian F32 data."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors:
        data = t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def export(model, vocabulary, tokenizer, path):
    config = {"cell": model.cell, "layers": model.nlayers, "hidden_size": model.nhid,
              "embedding_size": model.ninp, "vocab_size": model.ntoken, "tied": model.tied,
              "dropout": model.dropout, "tokenizer": tokenizer}
    if len(vocabulary) != model.ntoken:
        raise ValueError(f"vocabulary has {len(vocabulary)} tokens, the model {model.ntoken}")
    metadata = {"format": "pt", "recurrent.format": "recurrent-language-model", "recurrent.format_version": "1",
                "recurrent.config": json.dumps(config, sort_keys=True),
                "recurrent.vocabulary": json.dumps(vocabulary, ensure_ascii=False)}
    write_safetensors(path, list(model.state_dict().items()), metadata)


def stream_nats(model, ids):
    """Mean loss with every token after the first predicted from all before it (one stream)."""
    model.eval()
    with torch.no_grad():
        x = torch.tensor(ids[:-1]).unsqueeze(1)
        logits, _ = model(x)
        return F.cross_entropy(logits.view(-1, model.ntoken).double(), torch.tensor(ids[1:])).item()


def make_fixtures(out_dir):
    text_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Data", "tinyshakespeare.txt")
    with open(text_path, encoding="utf-8") as f:
        full = f.read()
    train, evaluation = full[:3000], full[3000:4500]
    vocabulary = sorted(set(train + evaluation))
    ids = [vocabulary.index(c) for c in evaluation]
    cases = []
    for name, cell, layers, hidden, emb, tied in [("pytorch_gru", "gru", 2, 32, 16, False),
                                                  ("pytorch_lstm_tied", "lstm", 1, 24, 24, True)]:
        torch.manual_seed(len(cases) + 3)
        model = RNNModel(cell, len(vocabulary), emb, hidden, layers, tie_weights=tied)
        # Briefly train so the weights are not just their initial values.
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        tids = torch.tensor([vocabulary.index(c) for c in train])
        for _ in range(30):
            logits, _ = model(tids[:-1].unsqueeze(1))
            loss = F.cross_entropy(logits.view(-1, len(vocabulary)), tids[1:])
            opt.zero_grad()
            loss.backward()
            opt.step()
        export(model, vocabulary, "char", os.path.join(out_dir, name + ".safetensors"))
        nats = stream_nats(model, ids)
        cases.append({"checkpoint": name, "nats_per_token": nats, "perplexity": math.exp(nats), "tokens": len(ids) - 1})
    with open(os.path.join(out_dir, "pytorch_export_text.txt"), "w", encoding="utf-8") as f:
        f.write(evaluation)
    with open(os.path.join(out_dir, "pytorch_export.json"), "w") as f:
        json.dump(cases, f, indent=1)
    print(json.dumps(cases, indent=1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", help="write the test fixtures into this folder")
    parser.add_argument("--state-dict", help="a torch.save'd RNNModel state_dict")
    parser.add_argument("--cell", choices=["gru", "lstm", "rnn-tanh", "rnn-relu"])
    parser.add_argument("--vocab", help="JSON array of the tokens in id order")
    parser.add_argument("--tokenizer", choices=["char", "word"], default="char")
    parser.add_argument("--out", help="checkpoint to write (.safetensors)")
    args = parser.parse_args()
    if args.fixtures:
        make_fixtures(args.fixtures)
        return
    if not (args.state_dict and args.cell and args.vocab and args.out):
        parser.error("--state-dict, --cell, --vocab and --out are needed (or --fixtures)")
    state = torch.load(args.state_dict, map_location="cpu")
    ntoken, ninp = state["encoder.weight"].shape
    nhid = state["rnn.weight_hh_l0"].shape[1]
    nlayers = len([k for k in state if k.startswith("rnn.weight_ih_l") and not k.endswith("_reverse")])
    tied = torch.equal(state["encoder.weight"], state["decoder.weight"])
    model = RNNModel(args.cell, ntoken, ninp, nhid, nlayers, tie_weights=tied)
    model.load_state_dict(state)
    with open(args.vocab, encoding="utf-8") as f:
        vocabulary = json.load(f)
    export(model, vocabulary, args.tokenizer, args.out)


if __name__ == "__main__":
    main()
