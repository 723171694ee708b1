#!/usr/bin/env python3
"""Writes tiny random-weight models in real Hugging Face format, with reference outputs.

Each fixture is a directory under tests/fixtures/models/<name>/ holding what
`save_pretrained` writes (config.json, model.safetensors, generation_config.json) plus
reference.json: for each prompt, the greedy continuation computed by transformers (a full
forward pass per step, no KV cache, so the reference does not depend on transformers'
cache code), the logits of the token after the prompt, and the logits after the last
generated token, and the smallest top-1/top-2 logit gap met along the way (how close the
greedy path came to a tie).

Run where torch + transformers + safetensors are installed (the GPU machine has them):
    python3 scripts/make_fixtures.py [--out tests/fixtures/models] [--only NAME ...]
Models are built on the CPU in float64 and saved in the fixture's dtype, so the weights are
the same whatever machine runs this; references are computed on the CPU.
"""
import argparse
import json
import math
import os
import sys

import torch
import transformers

N_NEW = 32
PROMPT_LENGTHS = (1, 7, 23, 70)


def llama_config(**over):
    cfg = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
               rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
               bos_token_id=1, eos_token_id=2, hidden_act="silu")
    cfg.update(over)
    return transformers.LlamaConfig(**cfg)


def small(**over):
    base = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2)
    base.update(over)
    return base


# name -> (config factory, dtype, description)
FIXTURES = {
    "llama-f32": (lambda: llama_config(
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
        rope_theta=500000.0), torch.float32,
        "Llama, float32, llama3 rope scaling, untied embeddings, GQA 4/2"),
    "llama-bf16": (lambda: llama_config(tie_word_embeddings=True), torch.bfloat16,
                   "Llama, bfloat16, default rope, tied embeddings, GQA 4/2"),
    "qwen2-f32": (lambda: transformers.Qwen2Config(**small(
        tie_word_embeddings=True, rope_theta=1000000.0, use_sliding_window=False)),
        torch.float32, "Qwen2, float32, q/k/v bias, tied embeddings"),
    "qwen3-f32": (lambda: transformers.Qwen3Config(**small(
        head_dim=32, tie_word_embeddings=False, rope_theta=1000000.0, use_sliding_window=False)),
        torch.float32, "Qwen3, float32, q/k RMSNorm per head, head_dim 32 != hidden/heads"),
    "mistral-f32": (lambda: transformers.MistralConfig(**small(
        sliding_window=16, tie_word_embeddings=False)),
        torch.float32, "Mistral, float32, sliding window 16 (shorter than prompt + generation)"),
    "phi3-f32": (lambda: transformers.Phi3Config(**small(
        pad_token_id=0, tie_word_embeddings=False, resid_pdrop=0.0, embd_pdrop=0.0,
        attention_dropout=0.0)),
        torch.float32, "Phi-3, float32, fused qkv_proj and gate_up_proj (out-of-tree example)"),
    "phi3-partial-f32": (lambda: transformers.Phi3Config(**small(
        pad_token_id=0, tie_word_embeddings=True, partial_rotary_factor=0.5, sliding_window=16,
        resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0)),
        torch.float32, "Phi-3, float32, partial_rotary_factor 0.5, sliding window 16, tied "
        "embeddings (out-of-tree example)"),
}


def randomize(model, seed, std):
    """Normal(0, std) weights (norm weights around 1) so that logits are well separated."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g, dtype=torch.float64))


def greedy_reference(model, prompt):
    ids = list(prompt)
    first_logits = None
    min_gap = math.inf
    last_logits = None
    with torch.no_grad():
        for step in range(N_NEW + 1):
            out = model(torch.tensor([ids])).logits[0, -1].double()
            top2 = torch.topk(out, 2).values
            if step < N_NEW:
                min_gap = min(min_gap, float(top2[0] - top2[1]))
            if step == 0:
                first_logits = out
            if step == N_NEW:
                last_logits = out
                break
            ids.append(int(torch.argmax(out)))
    return ids[len(prompt):], first_logits, last_logits, min_gap


def make(name, out_dir):
    make_cfg, dtype, desc = FIXTURES[name]
    cfg = make_cfg()
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float64,
                                                          attn_implementation="eager")
    std = 0.5 / math.sqrt(cfg.hidden_size) * 4
    randomize(model, seed=1234, std=std)
    model = model.to(dtype)
    path = os.path.join(out_dir, name)
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    # References come from the checkpoint as a user loads it (from_pretrained computes the
    # rotary frequencies afresh in float32; a model cast with .to() would have them rounded).
    model = transformers.AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype, attn_implementation="eager").eval()

    g = torch.Generator().manual_seed(99)
    prompts = [torch.randint(3, cfg.vocab_size, (n,), generator=g).tolist() for n in PROMPT_LENGTHS]
    refs = {"description": desc, "dtype": str(dtype).replace("torch.", ""),
            "transformers_version": transformers.__version__, "torch_version": torch.__version__,
            "n_new": N_NEW, "cases": []}
    # Native-dtype reference, and for 16-bit models also the same weights run in float32
    # (what pagoda's CPU backend computes: 16-bit weights widened at load, f32 activations).
    variants = [("native", model)]
    if dtype != torch.float32:
        variants.append(("f32_compute", transformers.AutoModelForCausalLM.from_pretrained(
            path, dtype=torch.float32, attn_implementation="eager").eval()))
    for prompt in prompts:
        case = {"prompt": prompt}
        for tag, m in variants:
            toks, first, last, gap = greedy_reference(m, prompt)
            case[tag] = {"greedy": toks, "min_top2_gap": gap,
                         "first_logits": [float(x) for x in first],
                         "last_logits": [float(x) for x in last]}
        refs["cases"].append(case)
        print(f"{name}: prompt len {len(prompt)}: greedy {case['native']['greedy'][:8]}... "
              f"min gap {case['native']['min_top2_gap']:.4g}", file=sys.stderr)
    with open(os.path.join(path, "reference.json"), "w") as f:
        json.dump(refs, f, separators=(",", ":"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                  "fixtures", "models"))
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(4)
    for name in FIXTURES:
        if args.only and name not in args.only:
            continue
        make(name, args.out)


if __name__ == "__main__":
    main()
