#!/usr/bin/env python3
"""Score a text with an ARPA file through KenLM, the way `recurrent ngram eval` scores it.

    pip install kenlm
    python3 Tools/check_kenlm.py model.arpa valid.txt [--tokenizer char|word]

One stream: every token after the first is predicted from the tokens before it (KenLM's state
carried across the whole text, starting from the null context, no <s>). Characters are named as
our ARPA files name them (whitespace, '<' and '\\' as <U+XXXX>); words as written, line ends as
</s>. Prints the same JSON fields as `recurrent ngram eval --json`.
"""
import argparse
import json
import math

import kenlm

parser = argparse.ArgumentParser()
parser.add_argument("arpa")
parser.add_argument("text")
parser.add_argument("--tokenizer", default="char", choices=["char", "word"])
args = parser.parse_args()


def char_token(c):
    if c.isspace() or c in "<\\" or ord(c) < 0x20 or ord(c) in (0x7F, 0x85, 0xA0):
        return "<U+%04X>" % ord(c)
    return c


text = open(args.text, encoding="utf-8").read()
if args.tokenizer == "char":
    tokens = [char_token(c) for c in text]
else:
    tokens = []
    for line in text.splitlines():
        tokens += line.split() + ["</s>"]
model = kenlm.Model(args.arpa)
state, out = kenlm.State(), kenlm.State()
model.NullContextWrite(state)
total = 0.0
for i, token in enumerate(tokens):
    log10p = model.BaseScore(state, token, out)
    if i > 0:
        total += log10p
    state, out = out, state
n = len(tokens) - 1
nats = -total * math.log(10) / n
print(json.dumps({"tokens": n, "nats_per_token": nats, "bits_per_token": nats / math.log(2),
                  "perplexity": math.exp(nats), "scorer": "kenlm"}))
