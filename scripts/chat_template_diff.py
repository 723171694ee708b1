#!/usr/bin/env python3
"""Differential check of `pagoda chat-template` against transformers for any chat template.

    scripts/chat_template_diff.py --pagoda BUILD/tools/pagoda --model DIR
    scripts/chat_template_diff.py --pagoda BUILD/tools/pagoda --template FILE.jinja \
        [--bos '<s>'] [--eos '</s>']

Renders a set of conversations (plain, system, multi-turn, tools, tool calls, thinking
kwargs) with transformers' render_jinja_template and with pagoda, and prints every
difference. Exit status 1 when any output differs. Needs `pip install transformers jinja2`.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
from transformers.utils.chat_template_utils import render_jinja_template  # noqa: E402

TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
CALL = {"id": "call12345", "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}

CASES = [
    {"messages": [{"role": "user", "content": "Hi"}]},
    {"messages": [{"role": "user", "content": "Hi"}], "add_generation_prompt": True},
    {"messages": [{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "Hi"}], "add_generation_prompt": True},
    {"messages": [{"role": "user", "content": " a "}, {"role": "assistant", "content": " b "},
                  {"role": "user", "content": "c\n"}], "add_generation_prompt": True},
    {"messages": [{"role": "user", "content": "Weather?"}], "tools": [TOOL],
     "add_generation_prompt": True},
    {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Weather?"}],
     "tools": [TOOL], "add_generation_prompt": True},
    {"messages": [{"role": "user", "content": "Weather?"},
                  {"role": "assistant", "content": "", "tool_calls": [CALL]},
                  {"role": "tool", "tool_call_id": "call12345", "content": "sunny"},
                  {"role": "assistant", "content": "Sunny."}], "tools": [TOOL]},
    {"messages": [{"role": "user", "content": "Hi"}], "add_generation_prompt": True,
     "kwargs": {"enable_thinking": False}},
    {"messages": [{"role": "user", "content": "Q"},
                  {"role": "assistant", "content": "<think>\nr\n</think>\n\nA"},
                  {"role": "user", "content": "Q2"}], "add_generation_prompt": True},
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pagoda", required=True)
    ap.add_argument("--model")
    ap.add_argument("--template")
    ap.add_argument("--bos")
    ap.add_argument("--eos")
    ap.add_argument("--cases", help="a JSON file with a list of cases like the built-in ones")
    args = ap.parse_args()
    cases = json.load(open(args.cases)) if args.cases else CASES
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            model = args.model
            cfg = json.load(open(os.path.join(model, "tokenizer_config.json")))
            source = cfg["chat_template"]
            if isinstance(source, list):
                source = {t["name"]: t["template"] for t in source}["default"]

            def tok(v):
                return v.get("content") if isinstance(v, dict) else v
            bos, eos = tok(cfg.get("bos_token")), tok(cfg.get("eos_token"))
        else:
            source = open(args.template, encoding="utf-8").read()
            bos, eos = args.bos, args.eos
            model = tmp
            with open(os.path.join(tmp, "tokenizer_config.json"), "w") as f:
                json.dump({"bos_token": bos, "eos_token": eos, "chat_template": source}, f)
        bad = 0
        for i, case in enumerate(cases):
            kw = dict(case.get("kwargs", {}))
            if bos is not None:
                kw.setdefault("bos_token", bos)
            if eos is not None:
                kw.setdefault("eos_token", eos)
            msgs = [{k: v for k, v in m.items() if v is not None} for m in case["messages"]]
            try:
                want = render_jinja_template([msgs], tools=case.get("tools"), chat_template=source,
                                             add_generation_prompt=case.get(
                                                 "add_generation_prompt", False), **kw)[0][0]
            except Exception as e:  # noqa: BLE001
                want = f"<error {type(e).__name__}: {e}>"
            req = {"messages": case["messages"], "tools": case.get("tools"),
                   "chat_template_kwargs": case.get("kwargs", {}),
                   "add_generation_prompt": case.get("add_generation_prompt", False)}
            p = subprocess.run([args.pagoda, "chat-template", "--model", model],
                               input=json.dumps(req).encode(), capture_output=True)
            got = p.stdout.decode() if p.returncode == 0 else f"<error {p.stderr.decode().strip()}>"
            same = got == want or (got.startswith("<error") and want.startswith("<error"))
            if not same:
                bad += 1
                print(f"case {i}: DIFFERS\n--- transformers\n{want!r}\n--- pagoda\n{got!r}\n")
            else:
                print(f"case {i}: ok" + (" (both raise)" if got.startswith("<error") else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
