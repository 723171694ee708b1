#!/usr/bin/env python3
"""Writes runtime/tokenizer/unicode_tables.c: the character classes the `tokenizers` package
uses in its pre-tokenizers and normalizers, read off the package itself.

    pip install tokenizers
    python3 scripts/make_tokenizer_unicode_tables.py

`tokenizers` takes these classes from Rust crates of different Unicode versions (Rust's own
char::is_numeric and to_lowercase, the unicode_categories crate for punctuation and Bert's
control characters, unicode-normalization for combining marks), and they differ from
utf8proc's tables for a few hundred code points (characters assigned in between). To give the
same pieces as `tokenizers` on any machine, pagoda uses these tables, made by running each
pre-tokenizer / normalizer of the package over every code point:
  punct       Punctuation and BertPreTokenizer isolate it (ASCII punctuation or a P* category)
  word        Whitespace keeps it in a run of word characters (Rust regex's \\w)
  numeric     Digits isolates it (char::is_numeric)
  mark        StripAccents removes it (a combining mark)
  nonspacing  BertNormalizer's strip_accents removes it (Mn), on characters NFD leaves alone
  bert_ctrl   BertNormalizer's clean_text removes it (NUL, U+FFFD, Cc/Cf/Co but \\t\\n\\r)
  lower       Lowercase maps it to another single character (c -> lowercase)
  script      UnicodeScripts' script of each character, as small numbers (0: "Any", which
              never starts a piece: the space and what the package's table leaves out);
              which number is which script does not matter, only equality, so the classes
              are found by asking the pre-tokenizer where it splits
Lowercase maps U+0130 to two characters ("i" + U+0307); the C code handles that one (it is
checked here that it is the only one).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "runtime", "tokenizer", "unicode_tables.c")
SEP = "|"
CHARS = [c for c in range(0x110000) if not (0xD800 <= c < 0xE000)]
BATCH = 2000


def batches(skip_sep=False):
    chars = [c for c in CHARS if not (skip_sep and chr(c) == SEP)]
    for i in range(0, len(chars), BATCH):
        yield chars[i:i + BATCH]


def isolated_by(pretok):
    """Characters a pre-tokenizer puts in a piece of their own between two letters."""
    out = set()
    for chunk in batches():
        s = "a" + "a".join(chr(c) for c in chunk) + "a"
        pieces = {p for p, _ in pretok.pre_tokenize_str(s) if "a" not in p}
        out.update(c for c in chunk if chr(c) in pieces)
    return out


def word_chars():
    """Characters Whitespace (\\w+|[^\\w\\s]+) keeps in one piece with the letters around them."""
    from tokenizers import pre_tokenizers as P
    pt = P.Whitespace()
    out = set()
    for chunk in batches():
        s = "a" + "a".join(chr(c) for c in chunk) + "a"
        # a run of word characters stays one piece: find the piece around each character
        pieces = pt.pre_tokenize_str(s)
        for p, (a, b) in pieces:
            if "a" in p:
                out.update(ord(ch) for ch in p)
    return out


def mapped_by(norm):
    """What a normalizer makes of each character alone: {c: output string}."""
    out = {ord(SEP): norm.normalize_str(SEP)}
    for chunk in batches(skip_sep=True):
        parts = norm.normalize_str(SEP.join(chr(c) for c in chunk)).split(SEP)
        assert len(parts) == len(chunk), "a character normalized to the separator"
        out.update(zip(chunk, parts))
    return out


def script_classes():
    """{code point: class} for UnicodeScripts, Any characters left out (see the docstring)."""
    from tokenizers import pre_tokenizers as P
    pt = P.UnicodeScripts()

    def starts(text):
        return {a for _, (a, _) in pt.pre_tokenize_str(text)}

    def differs(x, chars):  # chars whose class is neither x's nor Any
        out = set()
        for chunk in (chars[i:i + BATCH] for i in range(0, len(chars), BATCH)):
            st = starts(x + x.join(chr(c) for c in chunk) + x)  # offsets count characters
            out.update(c for k, c in enumerate(chunk) if 2 * k + 1 in st)
        return out
    chars = [c for c in CHARS if chr(c) != "a" and chr(c) != "\u03b1"]
    d_latin, d_greek = differs("a", chars), differs("\u03b1", chars)
    any_class = (set(chars) - d_latin) & (set(chars) - d_greek)
    real = sorted((set(chars) - any_class) | {ord("a"), 0x3B1})
    # runs of consecutive (non-Any) code points in one class: Any ones are invisible to it
    runs = [[real[0]]]
    for cs in range(0, len(real), BATCH):
        chunk = real[cs:cs + BATCH]
        off = 0 if cs == 0 else 1  # a chunk after the first starts with the one before it
        st = starts(("" if cs == 0 else chr(real[cs - 1])) + "".join(chr(c) for c in chunk))
        for k, c in enumerate(chunk):
            if cs == 0 and k == 0:
                continue
            if k + off in st:
                runs.append([c])
            else:
                runs[-1].append(c)
    # one class per set of runs that never split from each other
    leaders, cls = [], {}
    for run in runs:
        rep = chr(run[0])
        found = None
        if leaders:
            st = starts("".join(rep + chr(l) for l in leaders))
            for k in range(len(leaders)):
                if 2 * k + 1 not in st:
                    found = k
                    break
        if found is None:
            leaders.append(run[0])
            found = len(leaders) - 1
        for c in run:
            cls[c] = found + 1
    return cls


def ranges(cps):
    out = []
    for c in sorted(cps):
        if out and out[-1][1] + 1 == c:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


def c_ranges(name, cps, what):
    r = ranges(cps)
    items = ["{0x%X, 0x%X}" % (a, b) for a, b in r]
    lines = ["    " + ", ".join(items[i:i + 4]) + "," for i in range(0, len(items), 4)]
    return ("/* %s: %d code points in %d ranges */\n"
            "const struct pgd__cp_range pgd__uc_%s[] = {\n%s\n};\n"
            "const size_t pgd__uc_%s_n = %d;\n" % (what, len(cps), len(r), name,
                                                   "\n".join(lines), name, len(r)))


def main():
    import tokenizers
    from tokenizers import normalizers as N, pre_tokenizers as P
    punct = isolated_by(P.Punctuation())
    numeric = isolated_by(P.Digits(individual_digits=True))
    word = word_chars()
    assert ord("a") in word and ord("_") in word and ord(" ") not in word and ord("!") not in word
    assert ord("!") in punct and ord("7") in numeric and ord("a") not in punct | numeric
    strip = mapped_by(N.StripAccents())
    mark = {c for c, s in strip.items() if s == ""}
    nfd = mapped_by(N.NFD())
    bert_sa = mapped_by(N.BertNormalizer(clean_text=False, handle_chinese_chars=False,
                                         strip_accents=True, lowercase=False))
    nonspacing = {c for c, s in bert_sa.items() if s == "" and nfd[c] == chr(c)}
    clean = mapped_by(N.BertNormalizer(clean_text=True, handle_chinese_chars=False,
                                       strip_accents=False, lowercase=False))
    bert_ctrl = {c for c, s in clean.items() if s == ""}
    low = mapped_by(N.Lowercase())
    multi = {c: s for c, s in low.items() if len(s) != 1}
    assert multi == {0x130: "i\u0307"}, multi
    lower = sorted((c, ord(s)) for c, s in low.items() if s != chr(c) and len(s) == 1)
    script = script_classes()
    assert script[ord("a")] == script[ord("Z")] != script[0x3B1]
    assert script[0x3042] == script[0x30A2] == script[0x4E00] == script[0x30FC]  # all Han

    body = ["/* Generated by scripts/make_tokenizer_unicode_tables.py from tokenizers %s: do not\n"
            " * edit. The character classes of the `tokenizers` package (see the script for how\n"
            " * each is read off it), as sorted code point ranges for\n"
            " * runtime/tokenizer/unicode_class.c. */\n"
            "#include \"runtime/tokenizer/tokenizer_internal.h\"\n" % tokenizers.__version__]
    body.append(c_ranges("punct", punct, "Punctuation / BertPreTokenizer punctuation"))
    body.append(c_ranges("numeric", numeric, "Digits (char::is_numeric)"))
    body.append(c_ranges("word", word, "Whitespace's word characters (Rust regex \\w)"))
    body.append(c_ranges("mark", mark, "StripAccents (combining marks)"))
    body.append(c_ranges("nonspacing", nonspacing, "BertNormalizer strip_accents (Mn)"))
    body.append(c_ranges("bert_ctrl", bert_ctrl, "BertNormalizer clean_text removes"))
    items = ["{0x%X, 0x%X}" % p for p in lower]
    lines = ["    " + ", ".join(items[i:i + 4]) + "," for i in range(0, len(items), 4)]
    body.append("/* Lowercase: %d single-character mappings, sorted by the upper one */\n"
                "const struct pgd__cp_map pgd__uc_lower_map[] = {\n%s\n};\n"
                "const size_t pgd__uc_lower_map_n = %d;\n" % (len(lower), "\n".join(lines),
                                                          len(lower)))
    sr = []  # (lo, hi, class) runs of consecutive code points in one class
    for c in sorted(script):
        if sr and sr[-1][1] + 1 == c and sr[-1][2] == script[c]:
            sr[-1][1] = c
        else:
            sr.append([c, c, script[c]])
    items = ["{0x%X, 0x%X, %d}" % tuple(r) for r in sr]
    lines = ["    " + ", ".join(items[i:i + 4]) + "," for i in range(0, len(items), 4)]
    body.append("/* UnicodeScripts: %d classes over %d code points, in %d ranges (others: Any) */\n"
                "const struct pgd__cp_class pgd__uc_script[] = {\n%s\n};\n"
                "const size_t pgd__uc_script_n = %d;\n" % (max(script.values()), len(script),
                                                         len(sr), "\n".join(lines), len(sr)))
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("\n".join(body))
    print("%s: punct %d, numeric %d, mark %d, nonspacing %d, bert_ctrl %d, lower %d" %
          (OUT, len(punct), len(numeric), len(mark), len(nonspacing), len(bert_ctrl),
           len(lower)), file=sys.stderr)


if __name__ == "__main__":
    main()
