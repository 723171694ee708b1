#!/usr/bin/env python3
"""How far two runs of `pagoda generate --ids` agree, greedy token for token: the share of
prompts whose first N generated tokens are equal, whose first token is, and the mean
position of the first difference (N when none). For the quantization issue's check that
FP8 output agrees with bf16 on the first 16 tokens "for most prompts".

  pagoda generate --model DIR --prompts-file P --max-tokens 16 --ignore-eos --ids > a.jsonl
  pagoda generate --model DIR --prompts-file P --max-tokens 16 --ignore-eos --ids \\
      --quantization fp8 > b.jsonl
  python3 scripts/greedy_agreement.py a.jsonl b.jsonl [--tokens 16]

With --write-prompts FILE it writes the 48 free-form prompts these runs use (one JSON
object a line, as --prompts-file reads them) and exits.
"""
import argparse
import json
import sys

PROMPTS = [
    "The capital of France is", "Water boils at a temperature of",
    "The largest planet in our solar system is", "def fibonacci(n):",
    "import numpy as np\n\ndef normalize(x):", "Once upon a time, in a small village,",
    "The three primary colors are", "To make a cup of tea, first",
    "The theory of relativity was proposed by", "In Python, a list comprehension is",
    "The quick brown fox", "Photosynthesis is the process by which",
    "The main causes of the French Revolution were", "SELECT name, age FROM users WHERE",
    "My favorite book is", "The human heart has four chambers:",
    "Machine learning is a field of", "The recipe calls for two cups of",
    "Dear hiring manager,\n\nI am writing to", "The mitochondria is", "In 1969, Neil Armstrong",
    "A haiku about autumn:\n", "The difference between a virus and a bacterium is",
    "1, 1, 2, 3, 5, 8,", "The sun rises in the", "Shakespeare wrote many plays, including",
    "To sort a list in JavaScript, you can", "The Great Wall of China was built",
    "Here is a short poem about the sea:\n", "The chemical symbol for gold is",
    "The best way to learn a new language is", "Q: What is 12 times 12?\nA:",
    "The Amazon rainforest is located in", "class Stack:\n    def __init__(self):",
    "The stock market is", "Climate change refers to",
    "The first step in solving a quadratic equation is", "Mount Everest is the",
    "A good night's sleep helps", "The internet was originally developed",
    "Translate to French: 'Good morning' ->", "The speed of light is approximately",
    "Bananas are rich in", "The Eiffel Tower was completed in", "Docker containers are",
    "The moon orbits the Earth every", "Exercise is important because",
    "The founder of Microsoft is",
]


def token_runs(path):
    """Each line's first sample's token ids, in the file's order (pagoda generate keeps the
    prompts' order)."""
    runs = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            try:
                runs.append(json.loads(line)["outputs"][0]["token_ids"])
            except (ValueError, KeyError, IndexError) as e:
                sys.exit("%s:%d: not a `pagoda generate --ids` line (%s)" % (path, n, e))
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", nargs="?")
    ap.add_argument("b", nargs="?")
    ap.add_argument("--tokens", type=int, default=16, help="tokens compared (default 16)")
    ap.add_argument("--write-prompts", metavar="FILE")
    args = ap.parse_args()
    if args.write_prompts:
        with open(args.write_prompts, "w") as f:
            for p in PROMPTS:
                f.write(json.dumps({"prompt": p}) + "\n")
        return
    if not args.a or not args.b:
        ap.error("two outputs of pagoda generate --ids to compare")
    a, b = token_runs(args.a), token_runs(args.b)
    if len(a) != len(b):
        sys.exit("%s has %d prompts, %s %d" % (args.a, len(a), args.b, len(b)))
    n = args.tokens
    first_diff = []
    for x, y in zip(a, b):
        x, y = x[:n], y[:n]
        if len(x) < n or len(y) < n:
            sys.exit("a prompt generated fewer than %d tokens: run with --max-tokens %d "
                     "--ignore-eos" % (n, n))
        first_diff.append(next((i for i, (u, v) in enumerate(zip(x, y)) if u != v), n))
    k = len(first_diff)
    print("%d prompts: the first %d tokens equal for %d (%.0f%%), the first token for %d "
          "(%.0f%%); first difference at token %.2f on average" %
          (k, n, sum(d == n for d in first_diff), 100.0 * sum(d == n for d in first_diff) / k,
           sum(d > 0 for d in first_diff), 100.0 * sum(d > 0 for d in first_diff) / k,
           sum(first_diff) / k))


if __name__ == "__main__":
    main()
