#!/usr/bin/env python3
"""Writes pooling_reference.json next to a fixture model (tests/fixtures/models/<name>/):
the final hidden state (after the model's final norm, what transformers returns as
model.model(ids).last_hidden_state) of a few prompts, pooled as pagoda's embeddings
pool it: the last token's row ("last"), the mean of every row ("mean"), and the first
row ("cls"), each unnormalized (the engine's tests normalize them themselves).

Run where torch + transformers are installed, after scripts/make_fixtures.py made the
model:
    python3 scripts/make_pooling_reference.py [--models tests/fixtures/models] [--only NAME]
"""
import argparse
import json
import os

import torch
import transformers

PROMPT_LENGTHS = (1, 5, 23, 70)
DEFAULT = ("llama-f32", "qwen3-f32")


def make(path):
    model = transformers.AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, attn_implementation="eager").eval()
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(7)
    prompts = [torch.randint(3, vocab, (n,), generator=g).tolist() for n in PROMPT_LENGTHS]
    cases = []
    with torch.no_grad():
        for p in prompts:
            # The decoder stack without the LM head: its output is already through the
            # final norm (model.norm), as vLLM's pooling models take it.
            h = model.model(torch.tensor([p])).last_hidden_state[0].double()
            cases.append({"prompt": p,
                          "last": [float(x) for x in h[-1]],
                          "mean": [float(x) for x in h.mean(dim=0)],
                          "cls": [float(x) for x in h[0]]})
    out = {"transformers_version": transformers.__version__,
           "torch_version": torch.__version__,
           "hidden_size": model.config.hidden_size, "cases": cases}
    with open(os.path.join(path, "pooling_reference.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                     "fixtures", "models"))
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    for name in args.only or DEFAULT:
        make(os.path.join(args.models, name))


if __name__ == "__main__":
    main()
