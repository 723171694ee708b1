#!/usr/bin/env python3
"""Writes tests/fixtures/models/tiny-chat: a tiny random-weight Llama with a real tokenizer.

The model is what `pagoda serve` runs in the README and in the HTTP tests: config.json,
generation_config.json, model.safetensors (float32, written by this script, no torch
needed), tokenizer.json (a byte-level BPE: 256 byte tokens, merges learned from a small
English corpus below, three special tokens) and tokenizer_config.json with a ChatML chat
template. The vocabulary size of the model equals the tokenizer's.

Only Python 3 and numpy are needed; the output is the same on every machine (fixed seed).
When the `tokenizers` package is installed the script checks that it loads tokenizer.json
and round-trips a few strings.

    python3 scripts/make_chat_fixture.py [--out tests/fixtures/models/tiny-chat]
"""
import argparse
import collections
import json
import os
import re
import struct

import numpy as np

N_MERGES = 61
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = """
the quick brown fox jumps over the lazy dog. once upon a time there was a little model
that wanted to tell stories. it was the best of times, it was the worst of times. hello
world! the cat sat on the mat and the dog sat on the log. what is the answer? the answer
is forty two. in the beginning there were tokens, and the tokens were in the model.
user assistant system: you are a helpful assistant. hello, how are you? i am fine, thank you.
"""
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

CONFIG = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-5)


def bytes_to_unicode():
    """GPT-2's map from bytes to printable characters (the ByteLevel alphabet)."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1))
          + list(range(ord("\u00ae"), ord("\u00ff") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def learn_merges(corpus, byte_map, n_merges):
    """Plain BPE training over words split GPT-2 style (a leading space stays on a word)."""
    words = collections.Counter(re.findall(r" ?[a-z]+| ?[^a-z\s]+|\s+", corpus))
    seqs = {w: [byte_map[b] for b in w.encode()] for w in words}
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, c in words.items():
            s = seqs[w]
            for a, b in zip(s, s[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        for w in seqs:
            s, out, i = seqs[w], [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(s[i] + s[i + 1])
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out
    return merges


def tokenizer_json(byte_map, merges):
    vocab = {}
    for b in range(256):
        vocab[byte_map[b]] = b
    for a, b in merges:
        vocab[a + b] = len(vocab)
    added = []
    for s in SPECIALS:
        added.append(dict(id=len(vocab) + len(added), content=s, single_word=False, lstrip=False,
                          rstrip=False, normalized=False, special=True))
    bl = dict(type="ByteLevel", add_prefix_space=False, trim_offsets=True, use_regex=True)
    return dict(version="1.0", truncation=None, padding=None, added_tokens=added,
                normalizer=None, pre_tokenizer=bl, post_processor=bl, decoder=bl,
                model=dict(type="BPE", dropout=None, unk_token=None,
                           continuing_subword_prefix=None, end_of_word_suffix=None,
                           fuse_unk=False, byte_fallback=False, ignore_merges=False,
                           vocab=vocab, merges=[[a, b] for a, b in merges]))


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, arr in tensors:
        raw = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = dict(dtype="F32", shape=list(arr.shape), data_offsets=[off, off + len(raw)])
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def weights(vocab, rng):
    H, I, L = CONFIG["hidden_size"], CONFIG["intermediate_size"], CONFIG["num_hidden_layers"]
    nh, nkv = CONFIG["num_attention_heads"], CONFIG["num_key_value_heads"]
    hd = H // nh

    def normal(std, *shape):
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    # Embeddings (tied with the output head) wide enough that the logits are not flat; the
    # rows of printable ASCII bytes and of merges are wider than the rest, so that sampled
    # text is mostly readable characters rather than stray UTF-8 bytes.
    emb = normal(0.05, vocab, H)
    wide = [b for b in range(256) if 32 <= b < 127] + list(range(256, vocab - len(SPECIALS)))
    emb[wide] *= 3.0
    out = [("model.embed_tokens.weight", emb)]
    for i in range(L):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", np.ones(H, np.float32)),
                (p + "self_attn.q_proj.weight", normal(0.1, nh * hd, H)),
                (p + "self_attn.k_proj.weight", normal(0.1, nkv * hd, H)),
                (p + "self_attn.v_proj.weight", normal(0.1, nkv * hd, H)),
                (p + "self_attn.o_proj.weight", normal(0.1, H, nh * hd)),
                (p + "post_attention_layernorm.weight", np.ones(H, np.float32)),
                (p + "mlp.gate_proj.weight", normal(0.1, I, H)),
                (p + "mlp.up_proj.weight", normal(0.1, I, H)),
                (p + "mlp.down_proj.weight", normal(0.1, H, I))]
    out.append(("model.norm.weight", np.ones(H, np.float32)))
    return out


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "models",
                                                  "tiny-chat"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    byte_map = bytes_to_unicode()
    merges = learn_merges(CORPUS, byte_map, N_MERGES)
    tok = tokenizer_json(byte_map, merges)
    vocab = 256 + len(merges) + len(SPECIALS)
    ids = {s: 256 + len(merges) + i for i, s in enumerate(SPECIALS)}
    eos = ids["<|im_end|>"]
    with open(os.path.join(args.out, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
    with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
        json.dump(dict(tokenizer_class="PreTrainedTokenizerFast", bos_token=None,
                       eos_token="<|im_end|>", pad_token="<|endoftext|>",
                       model_max_length=CONFIG["max_position_embeddings"],
                       chat_template=CHAT_TEMPLATE), f, indent=1)
    cfg = dict(architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=vocab,
               hidden_act="silu", attention_bias=False, mlp_bias=False,
               tie_word_embeddings=True, bos_token_id=None, eos_token_id=eos,
               rope_theta=10000.0, torch_dtype="float32", **CONFIG)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    with open(os.path.join(args.out, "generation_config.json"), "w") as f:
        json.dump(dict(eos_token_id=[eos, ids["<|endoftext|>"]]), f, indent=1)
    write_safetensors(os.path.join(args.out, "model.safetensors"),
                      weights(vocab, np.random.default_rng(20261121)))
    try:
        import tokenizers
    except ImportError:
        print("tokenizers is not installed: tokenizer.json was not checked")
        return
    t = tokenizers.Tokenizer.from_file(os.path.join(args.out, "tokenizer.json"))
    for s in ["hello world", "the answer is forty two.", "<|im_start|>user\nhi<|im_end|>",
              "caf\u00e9 \u2603"]:
        enc = t.encode(s)
        assert t.decode(enc.ids, skip_special_tokens=False) == s, s
    assert t.get_vocab_size() == vocab, (t.get_vocab_size(), vocab)
    print(f"{args.out}: vocab {vocab}, {len(merges)} merges, eos {eos}; tokenizer.json checked")


if __name__ == "__main__":
    main()
