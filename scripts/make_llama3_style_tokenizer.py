#!/usr/bin/env python3
"""Generates tests/fixtures/tokenizer/llama3_style/: a tokenizer with every feature of
Meta Llama-3's tokenizer.json, trained here, so that the tests need no file under Meta's license.

    pip install tokenizers
    python3 scripts/make_llama3_style_tokenizer.py

Llama-3's tokenizer.json is redistributable only with Meta's license and attribution, so the
repository does not carry it. What the tests need of it is its shape, which this file copies:
  - byte-level BPE: the full 256-byte alphabet, merges written as "a b" strings;
  - the pre-tokenizer Sequence[Split(Llama-3's regex: case-insensitive contractions,
    \\p{N}{1,3}, Isolated), ByteLevel(use_regex=false)], ByteLevel decoder;
  - "ignore_merges": true, with vocabulary entries that no merge reaches (so a whole piece
    found in the vocabulary gives another result than merging: the test fails if pagoda
    ignored the flag);
  - 256 added special tokens in Llama-3's order (<|begin_of_text|>, <|end_of_text|>,
    reserved tokens, header ids, <|eot_id|>), and a post-processor that puts
    <|begin_of_text|> first (Sequence[ByteLevel, TemplateProcessing], as in Llama-3.1).
The vocabulary is trained by the `tokenizers` BPE trainer on tests/fixtures/tokenizer's corpus
and on text generated from a fixed seed, so reruns give the same file.
"""
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "llama3_style")
sys.path.insert(0, HERE)

# Llama-3's pre-tokenizer regex (a fact about the format, as published with the model).
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
VOCAB_SIZE = 6000
N_SPECIAL = 256
N_UNREACHABLE = 60


def special_names():
    """Llama-3's layout of its 256 special tokens."""
    names = ["<|begin_of_text|>", "<|end_of_text|>"] + \
        ["<|reserved_special_token_%d|>" % i for i in range(4)] + \
        ["<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_4|>",
         "<|eot_id|>"]
    k = 5
    while len(names) < N_SPECIAL:
        names.append("<|reserved_special_token_%d|>" % k)
        k += 1
    return names


WORDS = ("the of and to in is was for that with as on by at from this be are or an which "
         "it not have has one were but all their they more can other also when time been "
         "there first would into some these two its after only new such used may most over "
         "world language model token tokenizer server request response engine cache block "
         "memory value string number function return print import class self def while "
         "hello привет мир 你好 世界 こんにちは 안녕하세요 café naïve résumé").split()


def training_text():
    from make_tokenizer_refs import corpus, as_text
    rng = random.Random(2024)
    texts = [as_text(e) for e in corpus()]
    for _ in range(4000):
        n = rng.randint(3, 25)
        words = []
        for _ in range(n):
            r = rng.random()
            if r < 0.1:
                words.append(str(rng.randint(0, 100000)))
            elif r < 0.15:
                words.append(rng.choice(["'s", "'t", "'re", "'ll", "'ve", "'d", "'m", "n't"]))
            elif r < 0.2:
                words.append(rng.choice(["(", ")", ".", ",", ";", ":", "!", "?", "->", "==",
                                         "{", "}", "\n", "\n\n", "  ", "\t"]))
            else:
                w = rng.choice(WORDS)
                words.append(w.capitalize() if rng.random() < 0.2 else w)
        texts.append(" ".join(words))
    return texts


def main():
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, Regex
    tok = Tokenizer(models.BPE(ignore_merges=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    texts = training_text()
    tok.train_from_iterator(texts, trainer=trainer)
    j = json.loads(tok.to_str())

    # Whole pieces that merging splits: put them in the vocabulary without a merge, so that
    # only ignore_merges reaches them (Llama-3's vocabulary has such entries too).
    vocab = j["model"]["vocab"]
    rng = random.Random(7)
    extra = []
    for t in texts[:600]:
        for piece, _ in tok.pre_tokenizer.pre_tokenize_str(t):
            if len(extra) >= N_UNREACHABLE:
                break
            if piece not in vocab and piece not in extra and 2 <= len(piece) <= 12 and \
                    len(tok.model.tokenize(piece)) > 1 and rng.random() < 0.3:
                extra.append(piece)
    for p in extra:
        vocab[p] = len(vocab)
    j["model"]["ignore_merges"] = True

    base = len(vocab)
    j["added_tokens"] = [{"id": base + i, "content": s, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}
                         for i, s in enumerate(special_names())]
    bos = "<|begin_of_text|>"
    j["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {bos: {"id": bos, "ids": [base], "tokens": [bos]}}}]}
    # merges as "a b" strings, as Llama-3 writes them
    j["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]

    os.makedirs(OUT, exist_ok=True)
    text = json.dumps(j, ensure_ascii=False, indent=1)
    Tokenizer.from_str(text)  # tokenizers must read what it will be compared against
    with open(os.path.join(OUT, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    cfg = {"bos_token": bos, "eos_token": "<|eot_id|>", "clean_up_tokenization_spaces": True,
           "model_max_length": 8192, "tokenizer_class": "PreTrainedTokenizerFast"}
    with open(os.path.join(OUT, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=1)
        f.write("\n")
    print("%s: %d tokens (%d reachable only as whole pieces), %d merges, %d special" %
          (OUT, len(vocab), len(extra), len(j["model"]["merges"]), N_SPECIAL), file=sys.stderr)


if __name__ == "__main__":
    main()
