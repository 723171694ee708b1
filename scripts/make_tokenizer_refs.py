#!/usr/bin/env python3
"""Builds the tokenizer test corpus and the reference outputs of the `tokenizers` package.

    pip install tokenizers
    python3 scripts/make_tokenizer_refs.py

Reads only the tokenizers committed under tests/fixtures/tokenizer/ (llama3_style/ is made by
scripts/make_llama3_style_tokenizer.py). Writes tests/fixtures/tokenizer/corpus.json (the
strings, built to break tokenizers) and tests/fixtures/tokenizer/refs_<name>.json for mistral,
llama3_style, qwen3 and smollm2 (made by scripts/make_smollm2_tokenizer.py):
  encode(text, add_special_tokens=False/True), decode(ids, skip_special_tokens=False/True),
  and decodes of random id sequences (byte tokens, special tokens, ids out of range).

Also writes tests/fixtures/tokenizer/metaspace_variants.json and refs_metaspace_<variant>.json:
Metaspace variants of the Mistral tokenizer (the Prepend/Replace normalizer dropped, a Metaspace
pre-tokenizer and a decoder with Metaspace in it), stored as patches of the top-level keys of the
committed mistral/tokenizer.json; the test builds each variant the same way.

Where a field is left out it equals the input (see tests/unit/test_tokenizer.c for the format).
Texts with invalid UTF-8 are stored as hex bytes; Python sees them decoded with
errors="replace" (each maximal invalid subsequence -> U+FFFD), which is what pagoda's encode
does to invalid input. The corpus is generated from a fixed seed, so reruns give the same files.
"""
import argparse
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIX = os.path.join(ROOT, "tests", "fixtures", "tokenizer")


def corpus():
    out = []  # entries: str, or bytes (invalid UTF-8)

    def add(*xs):
        out.extend(xs)

    # ---- plain text, contractions, case ------------------------------------------------------
    add("Hello world", "Hello, world!", "hello", " hello", "  hello", "hello ", "HELLO WORLD",
        "The quick brown fox jumps over the lazy dog.",
        "I'm sure they'll say we've done what you'd've wanted; it's John's, isn't it?",
        "DON'T YOU'LL WE'VE I'M HE'D SHE'S", "'s 't 're 've 'm 'll 'd", "'S'T'RE'VE'M'LL'D",
        "don'ſ 'ſa", "rock'n'roll", "‘curly’ “quotes” «guillemets» „low”", "a'b'c'", "''''",
        "e.g. i.e. etc... !!! ??? ?!", "--- *** ___ ~~~ ===", "@user #hashtag $100 50% &amp;",
        "Mr. O'Neil's café", "naïve façade coöperate résumé", "ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏ", "ß ẞ ſ ﬁ ﬂ ﬀ",
        "", " ", "a", ".", "\n", "x" * 3)
    # ---- whitespace ----------------------------------------------------------------------------
    add("a  b", "a   b", "a\tb", "a\t\tb", "a\nb", "a\n\nb", "a\r\nb", "a\rb", "a \n b",
        "a\n \n b", " \n", "\n ", "   ", "\t", "\t\n\t", "  \n\n  x", "x\n\n\n\n\n",
        "line1\nline2\r\nline3\rline4", "trailing   ", "   leading", "  both  ",
        "a\u00a0b", "a\u00a0\u00a0b", "a\u3000b", "a\u2028b\u2029c", "a\u180eb", "x \u180e y",
        "a\u200bb", "a\u200d\u200cb", "a\x0bb\x0cc", "a\x1cb\x1dc\x1ed\x1fe", "a\x85b", "x \x85 y",
        "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a", "a\u202fb\u205fc",
        "\ufeffBOM at start", "tab\tseparated\tvalues\n1\t2\t3", " \t \t ", "a \t\n\r\u00a0\u3000b",
        "x" + " " * 17 + "y", "\n\n\n", "\r\n\r\n", " \r\n ", "end with space ")
    # ---- digits --------------------------------------------------------------------------------
    add("1", "12", "123", "1234", "12345", "1234567890", "3.14159", "1,000,000", "-42", "+7",
        "1e10", "0x1F", "2024-01-15", "12:30:45", "v1.2.3", "a1b2c3", "abc123def",
        "١٢٣٤٥ ٦٧٨٩", "१२३४५", "１２３４５", "²³¹ ½ ¾", "Ⅻ ⅻ Ⅸ", "① ② ⑩", "𝟘𝟙𝟚", "0.000001",
        "$1,234.56", "99 bottles", "1st 2nd 3rd 4th", "007", "3.0e-8 -2.5E+10")
    # ---- scripts -------------------------------------------------------------------------------
    add("Ελληνικά: Καλημέρα κόσμε", "Русский: Привет, мир! Съешь же ещё этих мягких булок",
        "Українська: Ґанок їжак", "Հայերեն: Բարեւ", "עברית: שלום עולם", "العربية: مرحبا بالعالم",
        "فارسی: سلام دنیا", "اردو: ہیلو", "हिन्दी: नमस्ते दुनिया", "বাংলা: হ্যালো বিশ্ব",
        "தமிழ்: வணக்கம் உலகம்", "తెలుగు: నమస్కారం", "ಕನ್ನಡ: ನಮಸ್ಕಾರ", "മലയാളം: നമസ്കാരം",
        "ગુજરાતી: નમસ્તે", "ਪੰਜਾਬੀ: ਸਤ ਸ੍ਰੀ ਅਕਾਲ", "සිංහල: ආයුබෝවන්", "ไทย: สวัสดีชาวโลก",
        "ລາວ: ສະບາຍດີ", "ພາສາ", "བོད་ཡིག: བཀྲ་ཤིས་བདེ་ལེགས།", "ქართული: გამარჯობა",
        "한국어: 안녕하세요 세계", "日本語: こんにちは世界、カタカナ、漢字", "中文：你好，世界！繁體字測試",
        "ግዕዝ: ሰላም ዓለም", "ᏣᎳᎩ: ᎣᏏᏲ", "ᠮᠣᠩᠭᠣᠯ: ᠰᠠᠶᠢᠨ", "ខ្មែរ: សួស្តី", "မြန်မာ: မင်္ဂလာပါ",
        "ᚠᚢᚦᚨᚱᚲ runes", "𐌰𐌱𐌲 gothic", "𐌀𐌁𐌂 old italic", "𝐀𝐁𝐂 𝑥𝑦𝑧 𝔄𝔅", "𠀀𠀁𠀂 ext-B",
        "ꦧꦱꦗꦮ javanese", "ᜆᜄᜎᜓᜄ᜔ tagalog", "ⴰⵣⵓⵍ tifinagh", "Ꭰ Ꭱ Ꭲ", "ǅ ǈ ǋ titlecase",
        "İstanbul ıi IĞ", "Ǆ ǆ", "ÅÅ Ω Ω K K", "ﾊﾝｶｸ half-width", "Ｆｕｌｌ ｗｉｄｔｈ",
        "mixed: hello мир 世界 عالم", "Ṩ ḍ̇ q̣̇")
    # ---- emoji ---------------------------------------------------------------------------------
    add("😀", "😀😃😄😁", "👍🏽 👍🏿", "👨‍👩‍👧‍👦 family", "🏳️‍🌈", "🇫🇷🇩🇪🇯🇵", "1️⃣ #️⃣",
        "☺️ ☺︎", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "I ❤️ NY", "🤖: beep boop 🚀🌕", "emoji🙂inside🙃words",
        "👩🏽‍💻👨🏿‍🚀", "🫠🫡🫶", "⌚⏰☕♻️✅", "🀄🃏🎴", "👁️‍🗨️")
    # ---- combining marks and normalization -----------------------------------------------------
    add("e\u0301", "cafe\u0301", "n\u0303o", "a\u0323\u0307", "a\u0307\u0323", "q\u0307\u0323",
        "\u1100\u1161\u11a8", "\u1112\u1161\u11ab\u1100\u1173\u11af", "\u212b \u2126 \u212a",
        "\u0344 \u0340 \u0341", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319"
        "\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u036b\u0357\u0334\u0362\u0335\u031c"
        "\u0330\u0354L\u0368\u0367\u0369\u0358\u0320G\u0311\u0357\u030e\u0305\u035b\u0341\u0334"
        "\u033b\u0348\u034d\u0354\u0339O\u0342\u030c\u030c\u0358\u0328\u0335\u0339\u033b\u031d"
        "\u0333", "\u0301 leading mark", "x\u0300\u0301\u0302\u0303\u0304\u0305\u0306\u0307",
        "\u0915\u094d\u0937", "\u0e01\u0e33", "\u00c5 vs A\u030a", "\ufb01 \ufb02 \u2460",
        "\u1e9b\u0323", "\u0958", "\u2000\u2001", "\u3099\u309a \u304b\u3099", "\u05d0\u05b7",
        "\uac00\u11a8", "e\u0301\u0301\u0301\u0301", "\u0f73 \u0f75 \u0f81",
        "a\u034fb", "i\u0307\u0301")
    # ---- code ----------------------------------------------------------------------------------
    add("def f(x):\n    return x ** 2  # square\n",
        "int main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
        "for (int i = 0; i < n; ++i) { a[i] += b[i] * c; }",
        '{"key": "value", "list": [1, 2, 3], "nested": {"a": null, "b": true}}',
        "<html><head><title>T</title></head><body><p class=\"x\">Hi &lt;b&gt;</p></body></html>",
        "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
        "#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do echo \"$f\"; done\n",
        "x = [i for i in range(10) if i % 2 == 0]\nprint(f\"{x!r:>10}\")",
        "fn main() { let v: Vec<u32> = (0..10).collect(); println!(\"{:?}\", v); }",
        "/^(?:[a-z0-9!#$%&'*+/=?^_`{|}~-]+)@example\\.com$/i",
        "    indented\n        more\n\t\ttabs\n", "a->b; c=>d; e::f; g<=h; i!=j; k&&l||m",
        "// comment\n/* block */\n# hash\n-- sql\n<!-- html -->",
        "https://example.com/path?query=1&x=%20y#frag", "user@example.com",
        "C:\\Users\\name\\file.txt", "0xDEADBEEF 0b1010 0o777 1_000_000", "\\n\\t\\\\ \\u00e9",
        "```python\nimport os\n```", "    \n    \n", "}}}{{{)))(((]]][[[", "i++; --j; k += 1;",
        "<div>\n  <span>text</span>\n</div>", "key: value\nlist:\n  - a\n  - b\n",
        "λx. x + 1", "∀x ∈ ℝ: x² ≥ 0", "∑_{i=1}^{n} i = n(n+1)/2", "α→β ⇒ γ ⊕ δ")
    # ---- added / special tokens written in the text ------------------------------------------
    add("<s>", "</s>", "<unk>", "<s>Hello</s>", "Hello <s> world </s>", "<s><s></s></s>",
        " <s> ", "x<s>y", "<<s>>", "<s", "s>", "< s >", "<S>",
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", "<|im_start|><|im_end|>",
        "<|endoftext|>", "text<|endoftext|>more", "<|im_sta", "<|im_start|", "|im_start|>",
        "<think>reasoning</think>answer", "<think>\n\n</think>\n\n", "<tool_call>{}</tool_call>",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
        "<|reserved_special_token_5|>", "<|reserved_special_token_250|>", "<|eot_id|><|eot_id|>",
        "<|begin_of_text|>", "a <|end_of_text|> b", "<|fim_prefix|>def<|fim_suffix|>x<|fim_middle|>",
        "<0x41>", "▁", "▁▁hello▁", "Ġhello", "ĠĠ", "<|vision_start|><|image_pad|><|vision_end|>",
        "<|im_start|>system\nYou are helpful.<|im_end|>", "<|IM_START|>", "<think> <think>",
        "  <|im_end|>  ", "\n<|im_end|>\n")
    # ---- very long --------------------------------------------------------------------------
    add("a" * 3000, "ab" * 700, "Supercalifragilisticexpialidocious" * 20, "1" * 500,
        "1234567890" * 30, "你" * 400, "😀" * 100, " " * 1000, "\n" * 300, "\t" * 200,
        "-" * 400, "=" * 150 + "\n" + "=" * 150, "x " * 500, "a\u0301" * 200,
        "https://example.com/" + "verylongpathsegment/" * 40,
        "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo" * 20, "аааааааааааааа" * 30,
        " ".join(["word"] * 300), "ab" * 5 + " " * 50 + "cd" * 5, "\u3000" * 100)
    # ---- invalid UTF-8 (bytes) ---------------------------------------------------------------
    add(b"\x80", b"abc\x80def", b"\xe2\x82", b"x\xe2\x82y", b"\xe2\x82\xac\xe2", b"\xc0\xaf",
        b"\xed\xa0\x80", b"\xed\xbf\xbf x", b"\xf4\x90\x80\x80", b"\xf5\xf6\xf7", b"\xff\xfe",
        b"\xfe\xff hi", b"\xf0\x9f\x98", b"\xf0\x9f\x98 \xf0\x9f", b"caf\xe9", b"\xc3",
        b"\xc3\x28", b"\xa0\xa1", b"\xe0\x80\x80", b"\xf0\x80\x80\x80", b"\xf8\x88\x80\x80\x80",
        b"ok \x00 nul", b"\x00", b"<s>\xff</s>", b"\xe4\xbd\xa0\xe5\xa5", b"\xc2\xc2\xc2")
    # ---- random mixes ---------------------------------------------------------------------------
    rng = random.Random(1234)
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "0123456789",
        " \t\n\r  \u00a0\u3000",
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
        "éèêëàâäôöûüçñßøåæœ",
        "αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔ",
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        "你好世界中文字符测试漢字",
        "こんにちはカタカナひらがな",
        "안녕하세요한국어",
        "مرحباالعربية",
        "नमस्तेहिन्दी",
        "😀😃😄😁👍🏽❤️🚀🇫🇷\u200d",
        "\u0300\u0301\u0302\u0308\u0323\u034f",
        "٣३３²Ⅻ①",
        "\u180e\u200b\u200c\u200d\u2028\u2029\ufeff\x85\x0b\x0c\x1c",
    ]
    specials = ["<s>", "</s>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>",
                "<|begin_of_text|>", "<|eot_id|>", "<unk>"]
    for i in range(160):
        n = rng.choice([1, 2, 3, 5, 8, 13, 21, 34, 55, 89])
        s = []
        for _ in range(n):
            r = rng.random()
            if r < 0.04:
                s.append(rng.choice(specials))
            elif r < 0.5:
                p = pools[0] if rng.random() < 0.5 else rng.choice(pools)
                s.append("".join(rng.choice(p) for _ in range(rng.randint(1, 8))))
            else:
                s.append(rng.choice(rng.choice(pools)))
        out.append("".join(s))
    for i in range(20):
        b = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        try:
            b.decode("utf-8")
            out.append(b.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(b)
    return out


# Metaspace variants of the Mistral tokenizer: top-level keys that replace those of
# mistral/tokenizer.json. The normalizer (Prepend "▁" + Replace " " -> "▁") goes; a Metaspace
# pre-tokenizer does its work. Decoders as tokenizer.json files have them:
#  - transformers' LlamaConverter with legacy=False writes Metaspace(prepend_scheme="first",
#    split=False) and keeps the Replace/ByteFallback/Fuse/Strip decoder (first_nosplit);
#  - its SpmConverter writes a bare Metaspace decoder, which leaves byte tokens as "<0x0A>"
#    (never_split, with the add_prefix_space field files keep for older readers);
#  - files made before tokenizers 0.14 have only "add_prefix_space": true, read as
#    prepend_scheme "always" with split (always_split's pre-tokenizer);
#  - Metaspace in a Sequence with ByteFallback and Fuse, where Replace + Strip were, before or
#    after ByteFallback (it strips the replacement from the first token only, so the order
#    decides whether "<0xE2><0x96><0x81>" at the start is stripped);
#  - after Fuse it sees one token: "never" turns every replacement into a space (never_nosplit),
#    "first"/"always" strip them all (first_split_fused).
_MS = "\u2581"


def _ms(scheme, split=True):
    return {"type": "Metaspace", "replacement": _MS, "prepend_scheme": scheme, "split": split}


def _seq(*decs):
    return {"type": "Sequence", "decoders": list(decs)}


_BF, _FUSE = {"type": "ByteFallback"}, {"type": "Fuse"}
METASPACE_VARIANTS = {
    "always_split": {"normalizer": None,
                     "pre_tokenizer": {"type": "Metaspace", "replacement": _MS,
                                       "add_prefix_space": True},
                     "decoder": _seq(_ms("always"), _BF, _FUSE)},
    "always_nosplit": {"normalizer": None, "pre_tokenizer": _ms("always", False),
                       "decoder": _seq(_BF, _ms("always", False), _FUSE)},
    "first_split": {"normalizer": None, "pre_tokenizer": _ms("first"),
                    "decoder": _seq(_ms("first"), _BF, _FUSE)},
    "first_nosplit": {"normalizer": None, "pre_tokenizer": _ms("first", False)},
    "never_split": {"normalizer": None, "pre_tokenizer": dict(_ms("never"), add_prefix_space=False),
                    "decoder": dict(_ms("never"), add_prefix_space=False)},
    "never_nosplit": {"normalizer": None, "pre_tokenizer": _ms("never", False),
                      "decoder": _seq(_BF, _FUSE, _ms("never", False))},
    "first_split_fused": {"normalizer": None, "pre_tokenizer": _ms("first"),
                          "decoder": _seq(_BF, _FUSE, _ms("first"))},
    # "first" means: the piece starts at offset 0 of the original text. Normalizers that delete
    # leading characters (Strip, Replace with "") and a Split that removes a leading delimiter
    # leave the first piece elsewhere. Not a real file; tested on its own corpus (DELETIONS).
    "first_after_deletions": {
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Strip", "strip_left": True, "strip_right": True},
            {"type": "Replace", "pattern": {"String": "x"}, "content": ""}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "[0-9]+"}, "behavior": "Removed",
             "invert": False},
            _ms("first")]},
        "decoder": _seq(_ms("first"), _BF, _FUSE)},
}
# variants tested on a corpus of their own (stored in their refs file)
DELETIONS = ("first_after_deletions",)


def deletions_corpus():
    out = ["xhello world", "xxhi", "x", "xx x", "  hello", "\t\n hello", " x hello", "1hello",
           "12 hello", "1x hello", " 1x2 hello ", "hello", "hello x", "", " ", "x1 ", "<s>xhi",
           "x<s>hi", "<s> hi", "1<s>hi", "\u2581x", "x\u2581hi", "\u3000hi", "\u00a0hi"]
    rng = random.Random(4321)
    atoms = ["x", "1", "23", " ", "  ", "\t", "\n", "hello", "world", "\u2581", "<s>", "</s>", "\u00e9",
             "\u4f60"]
    for _ in range(150):
        out.append("".join(rng.choice(atoms) for _ in range(rng.randint(1, 8))))
    return out


# ---- every other pre-tokenizer, normalizer and decoder type of `tokenizers` ---------------
# VARIANTS: name -> (base tokenizer folder, top-level keys that replace the base's). The test
# builds each the same way (tests/fixtures/tokenizer/variants.json) and compares with
# refs_variant_<name>.json, made on VARIANT_CORPUS.
def _pre(type_, **kw):
    return dict(type=type_, **kw)


def _pseq(*p):
    return {"type": "Sequence", "pretokenizers": list(p)}


def _nseq(*n):
    return {"type": "Sequence", "normalizers": list(n)}


_BL_REGEX = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
_BL_PLAIN = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
_BL_DEC = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
# Mistral's normalizer (Prepend "▁", Replace " " -> "▁") after a normalizer under test
_SPM_TAIL = [{"type": "Prepend", "prepend": _MS},
             {"type": "Replace", "pattern": {"String": " "}, "content": _MS}]
_BF_FUSE = _seq(_BF, _FUSE)
_NO_SPACES = {"normalizer": None, "decoder": _BF_FUSE}


def _punct(b):
    return ("mistral", {"pre_tokenizer": _pre("Punctuation", behavior=b)})


def _norm(*n):
    return ("mistral", {"normalizer": _nseq(*n, *_SPM_TAIL)})


def _bert_norm(**kw):
    args = dict(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    args.update(kw)
    return ("mistral", {"normalizer": dict(type="BertNormalizer", **args),
                        "pre_tokenizer": _pre("BertPreTokenizer"), "decoder": _BF_FUSE})


def _dec(*d):
    return ("mistral", {"decoder": _seq(*d)})


VARIANTS = {
    # Digits as SmolLM2 and StarCoder2 use it: before a ByteLevel with its regex
    "digits_individual": ("llama3_style", {"pre_tokenizer": _pseq(
        _pre("Digits", individual_digits=True), _BL_REGEX)}),
    "digits_contiguous": ("llama3_style", {"pre_tokenizer": _pseq(
        _pre("Digits", individual_digits=False), _BL_REGEX)}),
    # Digits before Metaspace "first": pieces after a digit are not first
    "digits_metaspace": ("mistral", {"normalizer": None, "pre_tokenizer": _pseq(
        _pre("Digits", individual_digits=True), _ms("first")),
        "decoder": _seq(_ms("first"), _BF, _FUSE)}),
    "whitespace": ("mistral", dict(_NO_SPACES, pre_tokenizer=_pre("Whitespace"))),
    "whitespace_split": ("mistral", dict(_NO_SPACES, pre_tokenizer=_pre("WhitespaceSplit"))),
    "punctuation_removed": _punct("Removed"),
    "punctuation_isolated": _punct("Isolated"),
    "punctuation_merged_prev": _punct("MergedWithPrevious"),
    "punctuation_merged_next": _punct("MergedWithNext"),
    "punctuation_contiguous": _punct("Contiguous"),
    "char_delimiter": ("mistral", {"pre_tokenizer": _pre("CharDelimiterSplit", delimiter=_MS)}),
    "bert_pretokenizer": ("mistral", dict(_NO_SPACES, pre_tokenizer=_pre("BertPreTokenizer"))),
    "fixed_length": ("mistral", {"pre_tokenizer": _pre("FixedLength", length=3)}),
    "unicode_scripts": ("mistral", dict(_NO_SPACES, pre_tokenizer=_pre("UnicodeScripts"))),
    "unicode_scripts_metaspace": ("mistral", {"normalizer": None, "pre_tokenizer": _pseq(
        _pre("UnicodeScripts"), _ms("first")), "decoder": _seq(_ms("first"), _BF, _FUSE)}),
    # Sequences inside Sequences, a ByteLevel with add_prefix_space at the end
    "nested_sequence": ("llama3_style", {"pre_tokenizer": _pseq(
        _pseq(_pre("Punctuation", behavior="MergedWithPrevious"),
              _pseq(_pre("Digits", individual_digits=False))),
        dict(_BL_REGEX, add_prefix_space=True))}),
    "lowercase": _norm({"type": "Lowercase"}),
    "strip_accents": _norm({"type": "StripAccents"}),
    "nfd_strip_accents": _norm({"type": "NFD"}, {"type": "StripAccents"}),
    "nfkd_lowercase": _norm({"type": "NFKD"}, {"type": "Lowercase"}),
    "nfkc": _norm({"type": "NFKC"}),
    "nfd": _norm({"type": "NFD"}),
    "nmt_nfkc": _norm({"type": "Nmt"}, {"type": "NFKC"}),
    "replace_regex": _norm({"type": "Replace", "pattern": {"Regex": " {2,}|\\t+"}, "content": " "}),
    "bert_normalizer": _bert_norm(),
    "bert_normalizer_cased": _bert_norm(lowercase=False),
    "bert_normalizer_strip_only": _bert_norm(clean_text=False, handle_chinese_chars=False,
                                             strip_accents=True, lowercase=False),
    "bytelevel_normalizer": ("llama3_style", {"normalizer": {"type": "ByteLevel"},
                                              "pre_tokenizer": None, "decoder": _BL_DEC}),
    # Metaspace "first" after normalizers that delete the first character (a leading control
    # character, a leading mark, a regex match) or put a space before it (a leading ideograph)
    "deletions_metaspace_first": ("mistral", {
        "normalizer": _nseq({"type": "Nmt"}, {"type": "StripAccents"},
                            {"type": "Replace", "pattern": {"Regex": "^x+"}, "content": ""}),
        "pre_tokenizer": _ms("first"), "decoder": _seq(_ms("first"), _BF, _FUSE)}),
    "bert_chinese_metaspace_first": ("mistral", {
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": False, "lowercase": False},
        "pre_tokenizer": _ms("first", False), "decoder": _seq(_ms("first"), _BF, _FUSE)}),
    # the other post-processors: cls before the sequence, sep after it (on llama3_style: a
    # Llama tokenizer_config.json would make the template from add_bos_token, as transformers)
    "roberta_processing": ("llama3_style", {"post_processor": {
        "type": "RobertaProcessing", "sep": ["<|end_of_text|>", 3326],
        "cls": ["<|begin_of_text|>", 3325], "trim_offsets": True, "add_prefix_space": True}}),
    "bert_processing": ("llama3_style", {"post_processor": {
        "type": "BertProcessing", "sep": ["<|eot_id|>", 3334], "cls": ["<|start_header_id|>", 3331]}}),
    "wordpiece_decoder": _dec(_BF, {"type": "WordPiece", "prefix": _MS, "cleanup": True}),
    "wordpiece_decoder_plain": _dec({"type": "Replace", "pattern": {"String": _MS}, "content": " "},
                                    _BF, {"type": "WordPiece", "prefix": "##", "cleanup": False},
                                    _FUSE),
    "bpe_decoder": _dec(_BF, {"type": "BPEDecoder", "suffix": _MS}),
    "ctc_decoder": _dec(_BF, {"type": "CTC", "pad_token": "<unk>", "word_delimiter_token": _MS,
                              "cleanup": True}),
    "ctc_decoder_plain": _dec({"type": "CTC", "pad_token": "<unk>", "word_delimiter_token": _MS,
                               "cleanup": False}, _BF, _FUSE),
    "replace_regex_decoder": _dec({"type": "Replace", "pattern": {"Regex": _MS + "+"},
                                   "content": " "}, _BF, _FUSE,
                                  {"type": "Strip", "content": " ", "start": 1, "stop": 0}),
}

# Strings aimed at the variants, added to the corpus entries of up to 200 characters.
VARIANT_EXTRA = [
    "abc123def4567", "x1.5e-3 and 42", "\u0663\u0664 \u00be \u2167 \U0001d7d8 \u00b2", "2024-01-15T12:30:45Z",
    "Hello,world!!... (yes) [no] {maybe}", "a_b-c d\u2014e \u00abf\u00bb", "\u2e52 \u2e5d \u166d new punct",
    "\u0130stanbul \u03a3\u0391\u03a3 \u1e9e \u01c5", "cafe\u0301 \u0301x \u0e33 \u1ab0", "\x01\x02 ctrl\x7f\x85 \x9f",
    "a\u200bb\u200fc\ufeffd\u2581e\ufffdf", "\u4e2d\u6587English\ud55c\uad6d\uc5b4 \u3042\u30a2",
    "tab\t\tand   spaces  ", "  lead and trail  ", "\ue000 private \U000f0000", "do not don't isn't . , ! ?",
    "##sub ##word \u2581\u2581x", "x\u4e2d", "\u4e2d\u6587 x", "\x01\u4e2d", "xxhello", "\u0301\u0301a",
    "\x01 x", "\u200b\u4e2d", "a" * 7 + " " + "b" * 11, "\U0001f600\U0001f600\U0001f600 x",
]


def nmt_nfkc_charsmap():
    """SentencePiece's built-in nmt_nfkc rules as a precompiled_charsmap (base64): taken from
    the committed variants.json when it has them, else made by training a throwaway
    SentencePiece model (pip install sentencepiece protobuf); the rules do not depend on the
    training text."""
    path = os.path.join(FIX, "variants.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = json.load(f).get("precompiled_nmt_nfkc")
        if old:
            return old["patch"]["normalizer"]["normalizers"][0]["precompiled_charsmap"]
    import base64
    import io
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter([as_text(e) for e in corpus()] * 3),
                                   model_writer=model, vocab_size=1000, model_type="bpe",
                                   normalization_rule_name="nmt_nfkc", minloglevel=2,
                                   hard_vocab_limit=False)
    proto = pb.ModelProto()
    proto.ParseFromString(model.getvalue())
    return base64.b64encode(proto.normalizer_spec.precompiled_charsmap).decode("ascii")


def variant_corpus():
    return [as_text(e) for e in corpus() if len(as_text(e)) <= 200] + VARIANT_EXTRA


def as_text(e):
    return e.decode("utf-8", errors="replace") if isinstance(e, bytes) else e


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.parse_args()
    from tokenizers import Tokenizer

    entries = corpus()
    assert len(entries) >= 300, len(entries)
    os.makedirs(FIX, exist_ok=True)
    with open(os.path.join(FIX, "corpus.json"), "w", encoding="utf-8") as f:
        f.write("[\n")
        for i, e in enumerate(entries):
            item = {"hex": e.hex()} if isinstance(e, bytes) else {"text": e}
            f.write(json.dumps(item, ensure_ascii=False) + (",\n" if i + 1 < len(entries) else "\n"))
        f.write("]\n")

    rng = random.Random(99)
    for name in ("mistral", "llama3_style", "qwen3", "smollm2"):
        tok = Tokenizer.from_file(os.path.join(FIX, name, "tokenizer.json"))
        write_refs(tok, name, entries, rng)

    # Metaspace variants of the committed Mistral file (its own rng: the refs above stay put)
    with open(os.path.join(FIX, "metaspace_variants.json"), "w", encoding="utf-8") as f:
        json.dump(METASPACE_VARIANTS, f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(FIX, "mistral", "tokenizer.json"), encoding="utf-8") as f:
        base = json.load(f)
    write_variants()
    rng = random.Random(77)
    for vname, patch in METASPACE_VARIANTS.items():
        j = dict(base)
        j.update(patch)
        tok = Tokenizer.from_str(json.dumps(j))
        # tokenizers must have read the variant as meant (old fields included)
        assert (tok.normalizer is None) == (patch["normalizer"] is None), vname
        assert type(tok.pre_tokenizer).__name__ in ("Metaspace", "Sequence"), vname
        own = deletions_corpus() if vname in DELETIONS else None
        write_refs(tok, "metaspace_" + vname, own or entries, rng, metaspace_ids(tok),
                   own is not None)


def write_variants():
    """variants.json and refs_variant_<name>.json (see VARIANTS)."""
    from tokenizers import Tokenizer
    VARIANTS["precompiled_nmt_nfkc"] = _norm({"type": "Precompiled",
                                              "precompiled_charsmap": nmt_nfkc_charsmap()})
    with open(os.path.join(FIX, "variants.json"), "w", encoding="utf-8") as f:
        json.dump({k: {"base": b, "patch": p} for k, (b, p) in VARIANTS.items()}, f,
                  ensure_ascii=False, indent=1)
        f.write("\n")
    texts = variant_corpus()
    with open(os.path.join(FIX, "variant_corpus.json"), "w", encoding="utf-8") as f:
        json.dump([{"text": e} for e in texts], f, ensure_ascii=False, indent=0)
        f.write("\n")
    for vname, (base_name, patch) in VARIANTS.items():
        rng = random.Random("variant_" + vname)  # its own: adding a variant moves no other
        with open(os.path.join(FIX, base_name, "tokenizer.json"), encoding="utf-8") as f:
            j = json.load(f)
        j.update(patch)
        tok = Tokenizer.from_str(json.dumps(j))
        write_refs(tok, "variant_" + vname, texts, rng, corpus_file="variant_corpus.json")


def metaspace_ids(tok):
    """Id lists that test where a Metaspace decoder strips the replacement, and the tokens
    to mix into random ids: runs of "▁", "▁" spelled as byte tokens, words after them."""
    t = tok.token_to_id
    ms = [i for i in (t(_MS * k) for k in range(1, 9)) if i is not None]
    ms_bytes = [t("<0xE2>"), t("<0x96>"), t("<0x81>")]
    words = [t(_MS + "Hello"), t("hello"), t(_MS + "world"), t("<0x0A>"), t("<0x20>")]
    bos, eos = t("<s>"), t("</s>")
    assert None not in ms_bytes + words + [bos, eos] and len(ms) > 3
    fixed = [ms[:1], ms[1:2], ms[:1] * 3, ms_bytes, ms_bytes + words[:1], ms_bytes * 2 + words[1:2],
             [bos] + ms_bytes + words[:2], [bos] + ms[:1] + words[:1], [bos, bos] + ms[2:3],
             words[1:2] + ms[:2] + words[1:2], [words[3]] + ms[:1] + words[2:3], [words[4]] * 3,
             [bos] + [words[4]] + words[1:3] + [eos], ms[:1] + [eos] + ms[:1] + words[:1],
             [t("<0xE2>"), t("<0x96>")] + words[:1], [t("<0xE2>")] + ms[:1]]
    return fixed, ms + ms_bytes + words


def write_refs(tok, name, entries, rng, extra=None, own_corpus=False, corpus_file=None):
    """Writes refs_<name>.json. extra: (id lists to decode, ids to mix into the random ones);
    own_corpus: entries are stored in the file ("corpus") instead of being corpus.json;
    corpus_file: entries are that file of tests/fixtures/tokenizer ("corpus_file")."""
    import tokenizers
    vocab = tok.get_vocab_size(with_added_tokens=True)
    cases = []
    for e in entries:
        text = as_text(e)
        ids = tok.encode(text, add_special_tokens=False).ids
        ids_sp = tok.encode(text, add_special_tokens=True).ids
        case = {"ids": ids}
        # ids_special is stored as what the post-processor put around ids when it has that
        # shape (it always has for these tokenizers), else in full.
        pre = post = None
        for a in range(len(ids_sp) - len(ids) + 1):
            b = len(ids_sp) - len(ids) - a
            if ids_sp[a:a + len(ids)] == ids:
                pre, post = ids_sp[:a], ids_sp[len(ids_sp) - b:]
                break
        if pre is None:
            case["ids_special"] = ids_sp
        elif pre or post:
            case["special_pre"], case["special_post"] = pre, post
        # decodes are omitted where they equal the input text
        dec = tok.decode(ids_sp, skip_special_tokens=False)
        dec_skip = tok.decode(ids_sp, skip_special_tokens=True)
        if dec != text:
            case["text"] = dec
        if dec_skip != text:
            case["text_skip"] = dec_skip
        cases.append(case)
    # Random id sequences: byte tokens, special tokens, ids past the vocabulary.
    added = list(tok.get_added_tokens_decoder().keys()) if hasattr(
        tok, "get_added_tokens_decoder") else []
    byte_ids = [i for i in (tok.token_to_id("<0x%02X>" % b) for b in range(256)) if i is not None]
    fixed, mix = extra if extra else ([], [])
    decodes = []
    for k in range(len(fixed) + 60):
        n = rng.randint(1, 24)
        ids = list(fixed[k]) if k < len(fixed) else []
        for _ in range(0 if k < len(fixed) else n):
            r = rng.random()
            if mix and r < 0.3:
                ids.append(rng.choice(mix))
            elif r < 0.15 and added:
                ids.append(rng.choice(added))
            elif r < 0.45 and byte_ids:
                ids.append(rng.choice(byte_ids))
            elif r < 0.5:
                ids.append(vocab + rng.randint(0, 1000))
            elif r < 0.75:
                ids.append(rng.randrange(min(vocab, 1200)))
            else:
                ids.append(rng.randrange(vocab))
        d = {"ids": ids, "text": tok.decode(ids, skip_special_tokens=False)}
        sk = tok.decode(ids, skip_special_tokens=True)
        if sk != d["text"]:
            d["text_skip"] = sk
        decodes.append(d)
    ref = {"tokenizer": name, "tokenizers_version": tokenizers.__version__,
           "encode": cases, "decode": decodes}
    if own_corpus:
        ref["corpus"] = [{"text": e} for e in entries]
    if corpus_file:
        ref["corpus_file"] = corpus_file
    with open(os.path.join(FIX, "refs_%s.json" % name), "w", encoding="utf-8") as f:
        json.dump(ref, f, ensure_ascii=False, separators=(",", ":"))
    print(name, len(cases), "texts,", len(decodes), "decodes", file=sys.stderr)


if __name__ == "__main__":
    main()
