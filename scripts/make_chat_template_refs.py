#!/usr/bin/env python3
"""Generates the chat-template references that tests/unit/test_chat_template.c compares against.

Rendered by transformers itself (pip install transformers jinja2; no torch needed, works
offline), so the references are what apply_chat_template(tokenize=False) produces:

  tests/fixtures/chat_templates/refs/<model>.json
      conversations rendered by each model's tokenizer (AutoTokenizer + apply_chat_template)
  tests/fixtures/chat_templates/jinja_cases.json
      small templates exercising one interpreter construct each, rendered by transformers'
      chat-template environment (render_jinja_template)

Usage: scripts/make_chat_template_refs.py
Reads only the repository: each template folder here is paired with a tokenizer.json of
tests/fixtures/tokenizer/.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from transformers import AutoTokenizer  # noqa: E402
from transformers.utils.chat_template_utils import render_jinja_template  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
FIX = os.path.join(SRC, "tests", "fixtures", "chat_templates")

TOKFIX = os.path.join(SRC, "tests", "fixtures", "tokenizer")

# model -> (folder holding tokenizer_config.json, tests/fixtures/tokenizer folder whose
# tokenizer.json it is paired with)
MODELS = {
    "llama2-chat": ("llama2-chat", "mistral"),
    "llama3-style": ("llama3-style", "llama3_style"),
    "smollm2": ("smollm2", "smollm2"),
    "qwen2.5-instruct": ("qwen2.5-instruct", "qwen3"),
    "qwen3": ("qwen3", "qwen3"),
    "mistral-instruct": ("mistral-instruct", "mistral"),
}

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city. Ünïcode: 北京 ✓",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. \"Paris\""},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7.5},
            },
            "required": ["city"],
        },
    },
}
CALC = {
    "type": "function",
    "function": {
        "name": "calc",
        "description": "Evaluate an arithmetic expression",
        "parameters": {"type": "object", "properties": {"expr": {"type": "string"}},
                       "required": ["expr"]},
    },
}


def u(text):
    return {"role": "user", "content": text}


def a(text):
    return {"role": "assistant", "content": text}


def s(text):
    return {"role": "system", "content": text}


BASIC = [
    ("single_user", [u("Hello!")], {}),
    ("system_user", [s("You are a terse assistant."), u("What is 2+2?")], {}),
    ("multi_turn", [u("Hi"), a("Hello! How can I help?"), u("Tell me a joke."),
                    a("Why did the chicken cross the road?"), u("Why?")], {}),
    ("system_multi_turn", [s("Be kind."), u("One"), a("Two"), u("Three")], {}),
    ("whitespace_content", [u("  padded question \n\n"), a("\n answer with spaces  \n"),
                            u("\tnext\t")], {}),
    ("unicode", [s("Réponds en français 🇫🇷."), u("Ça va? 你好 — ü ß"), a("Très bien ✓"),
                 u("emoji 😀 and \"quotes\" and 'apostrophes' and \\ backslash")], {}),
    ("ends_with_assistant", [u("Complete this:"), a("Sure")], {}),
    ("multiline", [u("line 1\nline 2\n\nline 4"), a("ok\nsecond line"), u("```\ncode\n```")],
     {}),
]


def model_cases(model):
    cases = []
    for name, msgs, extra in BASIC:
        cases.append({"name": name, "messages": msgs, **extra})
    for c in list(cases):
        cases.append({**c, "name": c["name"] + "+gen", "add_generation_prompt": True})
    if model == "llama2-chat":
        cases += [
            {"name": "error_two_users", "messages": [u("a"), u("b")]},
            {"name": "error_assistant_first", "messages": [a("a"), u("b")]},
            {"name": "error_system_then_assistant", "messages": [s("x"), a("a")]},
            {"name": "system_only_then_user", "messages": [s("sys"), u("q"), a("r"), u("q2")],
             "add_generation_prompt": True},
        ]
    if model == "mistral-instruct":
        call = {"id": "abc123XYZ", "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}
        cases += [
            {"name": "error_two_users", "messages": [u("a"), u("b")]},
            {"name": "error_bad_role", "messages": [u("a"), {"role": "critic", "content": "x"}]},
            {"name": "tools_available", "messages": [s("Use tools."), u("Weather in Paris?")],
             "tools": [WEATHER, CALC]},
            {"name": "tool_call_roundtrip", "tools": [WEATHER],
             "messages": [u("Weather in Paris?"),
                          {"role": "assistant", "tool_calls": [call], "content": None},
                          {"role": "tool", "tool_call_id": "abc123XYZ", "name": "get_weather",
                           "content": "{\"temp\": 21.5}"},
                          a("It is 21.5 degrees."), u("Thanks")]},
            {"name": "error_bad_tool_call_id",
             "messages": [u("q"), {"role": "assistant", "tool_calls": [
                 {**call, "id": "short"}]}]},
        ]
    if model in ("qwen2.5-instruct", "qwen3"):
        call = {"type": "function", "function": {"name": "get_weather",
                                                 "arguments": {"city": "Paris", "unit": "celsius"}}}
        call2 = {"type": "function", "function": {"name": "calc", "arguments": "{\"expr\": \"1+1\"}"}}
        cases += [
            {"name": "tools_no_system", "messages": [u("Weather in Paris?")],
             "tools": [WEATHER, CALC], "add_generation_prompt": True},
            {"name": "tools_with_system", "messages": [s("You are a weather bot."),
                                                        u("Weather in Paris?")],
             "tools": [WEATHER], "add_generation_prompt": True},
            {"name": "tool_call_roundtrip", "tools": [WEATHER, CALC],
             "messages": [u("Weather in Paris, and 1+1?"),
                          {"role": "assistant", "content": "Let me check.",
                           "tool_calls": [call, call2]},
                          {"role": "tool", "content": "{\"temp\": 21}"},
                          {"role": "tool", "content": "2"},
                          a("21 degrees, and 2.")], "add_generation_prompt": True},
            {"name": "tool_call_no_content", "tools": [WEATHER],
             "messages": [u("Weather?"), {"role": "assistant", "content": "",
                                          "tool_calls": [call]},
                          {"role": "tool", "content": "sunny"}], "add_generation_prompt": True},
            {"name": "system_in_middle", "messages": [u("a"), s("late system"), u("b")]},
        ]
    if model == "qwen3":
        cases += [
            {"name": "thinking_disabled", "messages": [u("Hi")], "add_generation_prompt": True,
             "kwargs": {"enable_thinking": False}},
            {"name": "thinking_enabled", "messages": [u("Hi")], "add_generation_prompt": True,
             "kwargs": {"enable_thinking": True}},
            {"name": "think_in_history", "messages": [
                u("What is 2+2?"), a("<think>\nsimple\n</think>\n\n4"), u("And 3+3?"),
                a("<think>\nalso simple\n</think>\n\n6")]},
            {"name": "reasoning_content_field", "messages": [
                u("Q1"), {"role": "assistant", "content": "A1", "reasoning_content": "R1"},
                u("Q2"), {"role": "assistant", "content": "A2", "reasoning_content": "\nR2\n"}],
             "kwargs": {"enable_thinking": False}},
            {"name": "reasoning_alias", "messages": [
                u("Q1"), {"role": "assistant", "content": "A1", "reasoning": "via alias"}]},
            {"name": "multi_step_tool", "tools": [WEATHER], "messages": [
                u("Weather?"), {"role": "assistant", "content": "<think>\nneed tool\n</think>\n\n",
                                "tool_calls": [{"function": {"name": "get_weather",
                                                             "arguments": {"city": "Oslo"}}}]},
                {"role": "tool", "content": "cold"},
                {"role": "user", "content": "<tool_response>\nmanual\n</tool_response>"},
                a("<think>\nok\n</think>\n\nIt is cold.")], "add_generation_prompt": True,
             "kwargs": {"enable_thinking": False}},
        ]
    return cases


def render_model(tok, case):
    try:
        out = tok.apply_chat_template(case["messages"], tools=case.get("tools"), tokenize=False,
                                      add_generation_prompt=case.get("add_generation_prompt",
                                                                     False),
                                      **case.get("kwargs", {}))
        return {"expected": out}
    except Exception as e:  # noqa: BLE001 - the reference records what transformers raised
        return {"error": str(e), "error_type": type(e).__name__}


# ---- interpreter constructs ----------------------------------------------------------------
# (name, template, variables): rendered with messages=[{"role": "user", "content": "x"}]

JINJA = [
    # whitespace control, trim_blocks and lstrip_blocks
    ("ws_trim_lstrip", "a\n  {% if true %}\n  b\n  {% endif %}\nc", {}),
    ("ws_minus", "a  {%- if true -%}  b  {%- endif -%}  c", {}),
    ("ws_var_minus", "a  {{- ' x ' -}}  b", {}),
    ("ws_var_no_lstrip", "  {{ 'v' }}  \n  w", {}),
    ("ws_plus", "a\n  {%+ if true +%}\nb\n  {%+ endif %}\nc", {}),
    ("ws_comment", "a {# note #}\n b\n  {# own line #}\nc", {}),
    ("ws_comment_minus", "a  {#- note -#}  b", {}),
    ("ws_raw", "{% raw %}{{ not evaluated }}{% endraw %}", {}),
    ("ws_raw_trim", "x\n  {% raw %}\n{{ y }}\n  {% endraw %}\nz", {}),
    ("ws_trailing_newline", "x\n", {}),
    ("ws_crlf", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\n", {}),
    ("ws_for_lines", "{% for x in [1, 2] %}\n{{ x }}\n{% endfor %}\n", {}),
    ("ws_tab_lstrip", "\t  {% if true %}\tX{% endif %}", {}),
    ("ws_lstrip_midline", "a {% if true %}b{% endif %}", {}),
    ("ws_start_lstrip", "   {% if true %}X{% endif %}", {}),
    ("ws_var_trailing_newline_kept", "{{ 'a' }}\n{{ 'b' }}", {}),
    # if / elif / else
    ("if_elif_else", "{% for n in [1, 2, 3] %}{% if n == 1 %}one{% elif n == 2 %}two"
                     "{% else %}many{% endif %};{% endfor %}", {}),
    ("if_nested", "{% if a %}{% if b %}ab{% else %}a{% endif %}{% endif %}",
     {"a": True, "b": False}),
    # for loops
    ("for_loop_vars", "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}"
                      "{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|"
                      "{% endfor %}", {}),
    ("for_prev_next", "{% for x in [1, 2, 3] %}{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }} "
                      "{% endfor %}", {}),
    ("for_cycle", "{% for x in range(5) %}{{ loop.cycle('a', 'b') }}{% endfor %}", {}),
    ("for_changed", "{% for x in [1, 1, 2, 2, 1] %}{% if loop.changed(x) %}{{ x }}{% endif %}"
                    "{% endfor %}", {}),
    ("for_else", "{% for x in [] %}{{ x }}{% else %}empty{% endfor %}", {}),
    ("for_filter", "{% for x in range(10) if x % 3 == 0 %}{{ x }}/{{ loop.length }} "
                   "{% endfor %}", {}),
    ("for_unpack_items", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
     {"d": {"b": 1, "a": [1, 2], "c": None}}),
    ("for_dict_keys", "{% for k in d %}{{ k }}{% endfor %}", {"d": {"z": 1, "y": 2}}),
    ("for_scope", "{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = i + 10 %}{{ x }}"
                  "{% endfor %}{{ x }}", {}),
    ("for_nested_loop", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ loop.index }}{{ b }}"
                        "{% endfor %}{{ loop.index }}{% endfor %}", {}),
    ("for_break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}"
                           "{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("for_undefined", "{% for x in nothing %}{{ x }}{% endfor %}done", {}),
    ("for_reverse_slice", "{% for m in msgs[::-1] %}{{ m.role }}{% endfor %}",
     {"msgs": [{"role": "a"}, {"role": "b"}, {"role": "c"}]}),
    # set and namespace
    ("set_namespace", "{% set ns = namespace(n=0, found=false) %}{% for x in [1, 2, 3] %}"
                      "{% set ns.n = ns.n + x %}{% if x == 2 %}{% set ns.found = true %}"
                      "{% endif %}{% endfor %}{{ ns.n }} {{ ns.found }}", {}),
    ("set_namespace_later_attr", "{% set ns = namespace() %}{% set ns.index = 0 %}"
                                 "{% set ns.index = ns.index + 1 %}{{ ns.index }}", {}),
    ("set_tuple", "{% set a, b = 1, 'two' %}{{ a }}{{ b }}", {}),
    ("set_block", "{% set x %}inner {{ 1 + 1 }}{% endset %}[{{ x }}]", {}),
    ("set_block_filter", "{% set x | upper %}shout{% endset %}{{ x }}", {}),
    ("set_in_if_leaks", "{% if true %}{% set y = 5 %}{% endif %}{{ y }}", {}),
    # slicing and indexing
    ("slices", "{{ s[::-1] }}|{{ s[1:] }}|{{ s[:-1] }}|{{ s[-2:] }}|{{ s[::2] }}|{{ s[1:4:2] }}"
               "|{{ s[10:] }}|{{ s[-100:2] }}", {"s": "héllo wörld"}),
    ("list_slices", "{{ l[::-1] }} {{ l[1:] }} {{ l[:-1] }} {{ l[-1] }} {{ l[0] }} {{ l[5] }}",
     {"l": [1, "two", 3.5]}),
    ("str_index", "{{ s[0] }}{{ s[-1] }}{{ s[1] }}", {"s": "ñandú"}),
    ("attr_vs_item", "{{ d.key }} {{ d['key'] }} {{ d.missing }} {{ d.items()|list }}",
     {"d": {"key": "v"}}),
    ("dotted_int", "{{ l.0 }}{{ l.1 }}", {"l": ["a", "b"]}),
    # string methods
    ("str_strip", "[{{ s.strip() }}][{{ s.lstrip() }}][{{ s.rstrip() }}][{{ t.strip('x') }}]"
                  "[{{ t.lstrip('xa') }}][{{ t.rstrip('x') }}]",
     {"s": " \t\n hi there \u3000\n", "t": "xxaxhixx"}),
    ("str_split", "{{ s.split() }} {{ s.split(' ') }} {{ t.split(',') }} {{ t.split(',', 1) }}"
                  " {{ t.rsplit(',', 1) }} {{ t.split(',')[-1] }}",
     {"s": "  a b\t c  ", "t": "x,y,,z"}),
    ("str_starts_ends", "{{ s.startswith('<tool') }} {{ s.endswith('>') }} "
                        "{{ s.startswith(('a', '<')) }} {{ s.endswith('x') }}",
     {"s": "<tool_response>"}),
    ("str_case", "{{ s.upper() }} {{ s.lower() }} {{ s.title() }} {{ s.capitalize() }}",
     {"s": "hello wORLD ßtraße"}),
    ("str_misc", "{{ s.replace('a', 'o') }} {{ s.find('n') }} {{ s.count('a') }} "
                 "{{ '-'.join(['a', 'b']) }} {{ s.replace('a', 'x', 1) }}", {"s": "banana"}),
    ("str_think_split", "{{ c.split('</think>')[-1].lstrip('\\n') }}|"
                        "{{ c.split('</think>')[0].rstrip('\\n').split('<think>')[-1]"
                        ".lstrip('\\n') }}",
     {"c": "<think>\nreason\n</think>\n\nanswer"}),
    # in
    ("in_ops", "{{ 'a' in 'cat' }} {{ 2 in [1, 2] }} {{ 'k' in d }} {{ 'z' not in d }} "
               "{{ 'x' in nothing }}", {"d": {"k": 1}}),
    # tests
    ("tests_basic", "{{ x is defined }} {{ y is defined }} {{ y is undefined }} {{ n is none }} "
                    "{{ x is none }} {{ x is string }} {{ 1 is string }} {{ 1 is number }} "
                    "{{ 1.5 is float }} {{ 1 is integer }} {{ true is boolean }} "
                    "{{ d is mapping }} {{ l is sequence }} {{ l is iterable }}",
     {"x": "s", "n": None, "d": {}, "l": []}),
    ("tests_more", "{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} "
                   "{{ 'a' is lower }} {{ 'A' is upper }} {{ x is eq 2 }} {{ x is ne 2 }} "
                   "{{ x is sameas 2 }} {{ f is false }} {{ f is true }} {{ x is in [1, 2] }} "
                   "{{ x is not none }} {{ x is gt 1 }} {{ x is lt 1 }}", {"x": 2, "f": False}),
    # filters
    ("f_trim_length", "[{{ s|trim }}] {{ s|length }} {{ l|length }} {{ d|count }} "
                      "{{ nothing|length }}", {"s": "  héllo  ", "l": [1, 2], "d": {"a": 1}}),
    ("f_tojson", "{{ v|tojson }}",
     {"v": {"b": [1, 2.0, None, True, "é\"\\\n\t/<>&'"], "a": {"x": -0.5, "y": 1e20},
            "u": "\u2028\x7f\x01"}}),
    ("f_tojson_indent", "{{ v|tojson(indent=2) }}", {"v": {"a": [1, {"b": []}], "c": {}}}),
    ("f_tojson_sorted", "{{ v|tojson(sort_keys=true) }}", {"v": {"b": 1, "a": 2, "c": [3]}}),
    ("f_tojson_ascii", "{{ v|tojson(ensure_ascii=true) }}", {"v": ["é", "😀"]}),
    ("f_tojson_separators", "{{ v|tojson(separators=(',', ':')) }}", {"v": {"a": [1, 2]}}),
    ("f_tojson_floats", "{{ [0.1, 1.0, 1e16, 1e-7, 123456789.123, 2.5e-5, 1/3, 100.0]|tojson }}",
     {}),
    ("f_list", "{{ 'abc'|list }} {{ d|list }} {{ (1, 2)|list }}", {"d": {"x": 1, "y": 2}}),
    ("f_selectattr", "{{ msgs|selectattr('role', 'equalto', 'user')|list|length }} "
                     "{{ msgs|selectattr('role', '==', 'user')|map(attribute='content')|list }} "
                     "{{ msgs|rejectattr('role', 'equalto', 'user')|list }} "
                     "{{ msgs|selectattr('tool_calls')|list|length }} "
                     "{{ msgs|selectattr('tool_calls', 'defined')|list|length }}",
     {"msgs": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b",
                                                   "tool_calls": [1]},
               {"role": "user", "content": "c"}]}),
    ("f_select_reject", "{{ [0, 1, 2, 3, none]|select|list }} {{ [1, 2, 3, 4]|select('odd')|list }}"
                        " {{ [1, 2, 3, 4]|reject('even')|list }} "
                        "{{ [1, 5, 9]|select('gt', 3)|list }}", {}),
    ("f_items_join", "{% for k, v in d|items %}{{ k }}:{{ v }},{% endfor %} "
                     "{{ ['a', 1, none]|join('-') }} {{ d|join }} "
                     "{{ msgs|join(', ', attribute='n') }}",
     {"d": {"x": 1, "y": 2}, "msgs": [{"n": "p"}, {"n": "q"}]}),
    ("f_default", "{{ x|default('dflt') }} {{ e|default('dflt') }} {{ e|default('dflt', true) }}"
                  " {{ n|default('dflt') }} {{ n|d('dflt', true) }}", {"e": "", "n": None}),
    ("f_first_last", "{{ l|first }} {{ l|last }} {{ 'xyz'|first }} {{ 'xyz'|last }} "
                     "{{ []|first }}", {"l": [3, 4, 5]}),
    ("f_sort_unique", "{{ l|sort }} {{ l|sort(reverse=true) }} {{ w|sort }} "
                      "{{ w|sort(case_sensitive=true) }} {{ w|unique|list }} "
                      "{{ p|sort(attribute='age')|map(attribute='name')|list }}",
     {"l": [3, 1, 2], "w": ["b", "A", "a", "B"],
      "p": [{"name": "x", "age": 3}, {"name": "y", "age": 1}, {"name": "z", "age": 3}]}),
    ("f_dictsort", "{{ d|dictsort }} {{ d|dictsort(by='value') }} "
                   "{{ d|dictsort(reverse=true) }}", {"d": {"b": 2, "a": 3, "C": 1}}),
    ("f_reverse", "{{ 'abc'|reverse }} {{ [1, 2, 3]|reverse|list }}", {}),
    ("f_numbers", "{{ '42'|int }} {{ 'x'|int }} {{ 3.9|int }} {{ '2.5'|float }} {{ 7|float }} "
                  "{{ -3|abs }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ 3.5|round }} "
                  "{{ 2.1|round(method='ceil') }} {{ [1, 2, 3.5]|sum }} {{ [4, 2, 8]|max }} "
                  "{{ [4, 2, 8]|min }}", {}),
    ("f_strings", "{{ 'hello world'|title }} {{ 'hELLO'|capitalize }} {{ 'a'|upper }} "
                  "{{ 'B'|lower }} {{ 'aaa'|replace('a', 'b', 2) }} {{ 5|string }} "
                  "{{ 'one two  three'|wordcount }} [{{ 'x'|center(5) }}] "
                  "{{ '%s-%d'|format('a', 3) }} {{ '<&>'|e }} {{ '<b>'|safe }}", {}),
    ("f_indent", "{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}|"
                 "{{ 'a\\n\\nb'|indent(2, blank=true) }}", {}),
    ("f_map_filter", "{{ ['a', 'b']|map('upper')|list }} {{ l|map(attribute='x', "
                     "default=0)|list }}", {"l": [{"x": 1}, {}]}),
    # Python value semantics
    ("py_truthiness", "{% for v in [[], {}, '', 0, 0.0, none, [0], 'a', 1, {'a': 1}] %}"
                      "{{ 'T' if v else 'F' }}{% endfor %}", {}),
    ("py_plus", "{{ 'a' + 'b' }} {{ [1] + [2, 3] }} {{ 1 + 2 }} {{ 1 + 2.0 }} {{ true + 1 }}", {}),
    ("py_numbers", "{{ 10 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }}"
                   " {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1.5e-5 }} {{ 3 / 3 }} {{ 1e16 }} {{ 1e15 }}"
                   " {{ -0.0 }} {{ 2 ** -1 }} {{ 7.5 // 2 }} {{ 7.5 % 2 }} {{ 1_000 }} {{ 0x1f }}"
                   " {{ 3 * 'ab' }} {{ [0] * 3 }} {{ 10 - 2.5 }}", {}),
    ("py_print", "{{ none }} {{ true }} {{ false }} {{ [1, 'a', none, true, 1.5] }} "
                 "{{ {'a': (1, 2), 'b': 'it\\'s'} }} {{ (1,) }} {{ () }} {{ nothing }} "
                 "{{ ['say \"hi\"', \"it's\"] }} {{ ['\\n\\t'] }}", {}),
    ("py_compare", "{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} "
                   "{{ 1 == 1.0 }} {{ 'a' != 'a' }} {{ none == none }} {{ {'a': 1} == {'a': 1} }}"
                   " {{ [1] == (1,) }} {{ 1 >= 1 }}", {}),
    ("py_and_or", "{{ 0 or 'x' }} {{ 'y' and 0 }} {{ none or [] }} {{ 1 and 2 }} "
                  "{{ not 0 }} {{ not 'a' }}", {}),
    ("py_cond", "[{{ 'yes' if true else 'no' }}][{{ 'yes' if false }}][{{ 'a' if 0 else 'b' "
                "if 1 else 'c' }}]", {}),
    ("py_concat", "{{ 'a' ~ 1 ~ none ~ nothing ~ [1] ~ 2.0 }}", {}),
    ("py_dict_methods", "{{ d.keys()|list }} {{ d.values()|list }} {{ d.get('a') }} "
                        "{{ d.get('z') }} {{ d.get('z', 5) }} {{ d|length }}",
     {"d": {"a": 1, "b": 2}}),
    ("py_insertion_order", "{{ d }} {{ d|tojson }}", {"d": {"z": 1, "a": 2, "m": 3}}),
    ("py_unicode_len", "{{ s|length }} {{ s[1:3] }} {{ s|upper }}", {"s": "日本語テキスト"}),
    ("py_string_escapes", "{{ 'tab\\there' }}|{{ \"q\\\"uote\" }}|{{ '\\x41\\u00e9\\U0001F600' }}|"
                          "{{ 'back\\\\slash' }}|{{ 'keep\\d' }}|{{ 'oct\\101' }}", {}),
    ("py_adjacent_strings", "{{ 'a' 'b' \"c\" }}", {}),
    # macros
    ("macro_basic", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}"
                    "{{ greet('Bob') }} {{ greet('Al', '?') }} {{ greet(punct='.', name='Cy') }}",
                    {}),
    ("macro_recursive", "{% macro count(n) %}{{ n }}{% if n > 0 %}{{ count(n - 1) }}{% endif %}"
                        "{% endmacro %}{{ count(3) }}", {}),
    ("macro_sees_globals", "{% macro m() %}{{ x }}-{{ bos_token }}{% endmacro %}{% set x = 5 %}"
                           "{{ m() }}", {"bos_token": "<s>"}),
    ("macro_caller", "{% macro wrap() %}[{{ caller() }}]{% endmacro %}"
                     "{% call wrap() %}inside{% endcall %}", {}),
    ("macro_render_json", "{%- macro render(v) -%}{%- if v is mapping -%}{{ '{' }}"
                          "{%- for k, x in v.items() -%}{{ k }}={{ render(x) }}"
                          "{%- if not loop.last %},{% endif -%}{%- endfor -%}{{ '}' }}"
                          "{%- elif v is string -%}'{{ v }}'{%- else -%}{{ v }}{%- endif -%}"
                          "{%- endmacro -%}{{ render(d) }}",
     {"d": {"a": {"b": "c", "n": 1}, "e": [1, 2]}}),
    # globals
    ("globals_range", "{{ range(3)|list }} {{ range(1, 10, 3)|list }} {{ range(5, 0, -2)|list }}",
     {}),
    ("globals_dict", "{{ dict(a=1, b='x') }} {{ dict(a=1)|tojson }}", {}),
    ("with_block", "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}", {}),
    ("filter_block", "{% filter upper %}shout {{ 'this' }}{% endfilter %}", {}),
    ("generation_block", "{% generation %}gen {{ 1 }}{% endgeneration %}", {}),
    ("messages_var", "{{ messages[0].role }}:{{ messages[0]['content'] }} "
                     "{{ add_generation_prompt }} {{ tools }} {{ documents }}", {}),
    # errors (the reference records that transformers raised)
    ("err_raise", "{{ raise_exception('Roles must alternate') }}", {}),
    ("err_raise_in_loop", "{% for m in [1, 2] %}{% if m == 2 %}"
                          "{{ raise_exception('bad item ' ~ m) }}{% endif %}{% endfor %}", {}),
    ("err_undefined_chain", "{{ d.a.b }}", {"d": {}}),
    ("err_add_undefined", "{{ 'a' + nothing }}", {}),
    ("err_unknown_filter", "{{ 1|nosuchfilter }}", {}),
    ("err_syntax_endfor", "{% if true %}x{% endfor %}", {}),
    ("err_unclosed", "{% for x in y %}", {}),
    ("err_type_add", "{{ 'a' + 1 }}", {}),
    ("err_div_zero", "{{ 1 / 0 }}", {}),
    ("err_namespace_underscore", "{% set ns = namespace() %}{% set ns._x = 1 %}", {}),
    ("err_list_append", "{% set l = [] %}{{ l.append(1) }}", {}),
    ("err_not_iterable", "{% for x in 5 %}{% endfor %}", {}),
    ("err_range_too_big", "{{ range(200000)|length }}", {}),
]


def render_jinja(template, variables):
    try:
        out, _ = render_jinja_template(conversations=[[{"role": "user", "content": "x"}]],
                                       chat_template=template, **variables)
        return {"expected": out[0]}
    except Exception as e:  # noqa: BLE001
        return {"error": str(e), "error_type": type(e).__name__}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.parse_args()

    os.makedirs(os.path.join(FIX, "refs"), exist_ok=True)
    for model, (folder, tokjson) in MODELS.items():
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(os.path.join(FIX, folder, "tokenizer_config.json"), tmp)
            shutil.copy(os.path.join(TOKFIX, tokjson, "tokenizer.json"), tmp)
            tok = AutoTokenizer.from_pretrained(tmp)
        cases = []
        for case in model_cases(model):
            cases.append({**case, **render_model(tok, case)})
        doc = {"model": model, "dir": folder, "generator": "scripts/make_chat_template_refs.py",
               "cases": cases}
        path = os.path.join(FIX, "refs", model + ".json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
            f.write("\n")
        errs = sum("error" in c for c in cases)
        print(f"{path}: {len(cases)} conversations ({errs} raise)")

    cases = []
    for name, template, variables in JINJA:
        cases.append({"name": name, "template": template, "vars": variables,
                      **render_jinja(template, variables)})
    path = os.path.join(FIX, "jinja_cases.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"generator": "scripts/make_chat_template_refs.py", "cases": cases}, f,
                  indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{path}: {len(cases)} templates ({sum('error' in c for c in cases)} raise)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
