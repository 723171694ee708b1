#!/usr/bin/env python3
"""Golden test of the Phi-3 example plugin against Hugging Face transformers.

Drives the installed `pagoda generate` with the plugin found through the plugin path and
compares, for every fixture given and every prompt in its reference.json (written by
scripts/make_fixtures.py with transformers):

  - the 32 greedy tokens, exactly;
  - the logits after the prompt (first_logits), within 1e-4 relative (max |a - b| / max |b|);
  - the logits after the prompt and the 32 greedy tokens (last_logits), the same way: the
    prompt + greedy tokens are fed back as a prompt with --max-tokens 1.

It also checks that the plugin loads (`pagoda plugins`), that Phi3ForCausalLM is refused
without it, that PAGODA_PLUGIN_PATH finds it as --plugin-dir does, and that the plugin
refuses what it cannot compute (longrope, unknown config keys, another activation, a qkv_proj
that disagrees with the config), naming the culprit (these on the first fixture).

Python 3 standard library only. Prints PASS:/FAIL:/SKIP: lines and a closing
"golden: N passed, N failed"; exits 0 when nothing failed.

    python3 golden_test.py --pagoda PATH --plugin-dir DIR [--fixture DIR ...]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

TOL = 1e-4
HERE = os.path.dirname(os.path.abspath(__file__))


class Golden:
    def __init__(self, pagoda, plugin_dir):
        self.pagoda = pagoda
        self.plugin_dir = plugin_dir
        self.fixture = None       # the fixture being checked
        self.passed = 0
        self.failed = 0
        self.tmp = tempfile.mkdtemp(prefix="pgd-phi3-golden-")

    def result(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"PASS: {name}")
        else:
            self.failed += 1
            print(f"FAIL: {name}: {detail}")
        sys.stdout.flush()

    def run(self, args, plugin_dir=True, env_path=None):
        """Runs pagoda with args; returns (exit status, stdout, stderr)."""
        env = dict(os.environ)
        env.pop("PAGODA_PLUGIN_PATH", None)
        env.setdefault("PAGODA_LOG", "warn")
        if env_path is not None:
            env["PAGODA_PLUGIN_PATH"] = env_path
        cmd = [self.pagoda] + args
        if plugin_dir:
            cmd += ["--plugin-dir", self.plugin_dir]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        return p.returncode, p.stdout, p.stderr

    def generate(self, model, prompt, n, dump=None, **kw):
        """Greedy tokens (a list) and, with dump, the logits after the prompt."""
        args = ["generate", "--model", model, "--prompt-ids", ",".join(map(str, prompt)),
                "--max-tokens", str(n), "--ignore-eos"]
        if dump:
            args += ["--dump-logits", dump]
        rc, out, err = self.run(args, **kw)
        if rc != 0:
            raise RuntimeError(f"pagoda generate exited {rc}: {err.strip()}")
        tokens = json.loads(out)
        logits = None
        if dump:
            with open(dump) as f:
                d = json.load(f)
            if d["n_prompt"] != len(prompt):
                raise RuntimeError(f"{dump}: n_prompt {d['n_prompt']}, expected {len(prompt)}")
            logits = d["logits"]
        return tokens, logits

    # ---- the reference ------------------------------------------------------------------
    def check_reference(self):
        with open(os.path.join(self.fixture, "reference.json")) as f:
            ref = json.load(f)
        n_new = ref["n_new"]
        key = "native" if ref["dtype"] == "float32" else "f32_compute"
        dump = os.path.join(self.tmp, "logits.json")
        for i, case in enumerate(ref["cases"]):
            prompt, want = case["prompt"], case[key]
            tag = f"{os.path.basename(self.fixture)} case {i} (prompt of {len(prompt)})"
            try:
                tokens, first = self.generate(self.fixture, prompt, n_new, dump)
            except (RuntimeError, ValueError, KeyError) as e:
                self.result(f"{tag}: generate", False, str(e))
                continue
            same = tokens == want["greedy"]
            at = next((j for j, (a, b) in enumerate(zip(tokens, want["greedy"])) if a != b),
                      min(len(tokens), len(want["greedy"])))
            self.result(f"{tag}: {n_new} greedy tokens equal transformers'", same,
                        f"first difference at token {at}: pagoda {tokens[at:at + 4]}, "
                        f"transformers {want['greedy'][at:at + 4]}")
            self.compare_logits(f"{tag}: logits after the prompt", first, want["first_logits"])
            # The logits after the last generated token: feed prompt + greedy back in.
            try:
                _, last = self.generate(self.fixture, prompt + want["greedy"], 1, dump)
            except (RuntimeError, ValueError, KeyError) as e:
                self.result(f"{tag}: generate (prompt + greedy)", False, str(e))
                continue
            self.compare_logits(f"{tag}: logits after {n_new} generated tokens", last,
                                want["last_logits"])
        return ref

    def check_knobs_bite(self, ref):
        """The settings a fixture exists to test must matter: with partial_rotary_factor
        back at 1, or the sliding window removed, the plugin's logits for the longest prompt
        must move away from the reference (else matching it proved nothing about them)."""
        with open(os.path.join(self.fixture, "config.json")) as f:
            cfg = json.load(f)
        key = "native" if ref["dtype"] == "float32" else "f32_compute"
        case = max(ref["cases"], key=lambda c: len(c["prompt"]))
        knobs = []
        rope = cfg.get("rope_parameters") or {}
        if rope.get("partial_rotary_factor", cfg.get("partial_rotary_factor", 1.0)) != 1.0:
            def full_rotary(c):
                c.pop("partial_rotary_factor", None)
                if "rope_parameters" in c:
                    c["rope_parameters"]["partial_rotary_factor"] = 1.0
            knobs.append(("partial_rotary_factor", full_rotary))
        if cfg.get("sliding_window"):
            knobs.append(("sliding_window", lambda c: c.update(sliding_window=None)))
        for knob, edit in knobs:
            name = f"{os.path.basename(self.fixture)}-without-{knob}"
            model = self.edited_fixture(name, edit)
            dump = os.path.join(self.tmp, "knob.json")
            try:
                _, got = self.generate(model, case["prompt"], 1, dump)
            except (RuntimeError, ValueError, KeyError) as e:
                self.result(f"{name}: generate", False, str(e))
                continue
            want = case[key]["first_logits"]
            rel = max(abs(a - b) for a, b in zip(got, want)) / max(abs(b) for b in want)
            self.result(f"{os.path.basename(self.fixture)}: {knob} changes the logits "
                        f"(without it: {rel:.2e} relative)", rel > 100 * TOL,
                        "the reference does not depend on it")

    def compare_logits(self, name, got, want):
        if got is None or len(got) != len(want) or any(g is None for g in got):
            self.result(name, False, f"got {len(got or [])} logits (or non-finite ones), "
                                     f"expected {len(want)} numbers")
            return
        diff = max(abs(a - b) for a, b in zip(got, want))
        scale = max(abs(b) for b in want) or 1.0
        rel = diff / scale
        self.result(f"{name} within {TOL:g} relative (got {rel:.2e})", rel <= TOL,
                    f"max |difference| {diff:.3e} over max |logit| {scale:.3e}")

    # ---- the plugin path ----------------------------------------------------------------
    def check_plugin_path(self, ref):
        rc, out, err = self.run(["plugins"])
        listed = out.split("\nrefused")[0]
        refused = out[len(listed):]
        self.result("`pagoda plugins --plugin-dir` lists phi3 claiming Phi3ForCausalLM",
                    rc == 0 and "phi3.so" in listed and "Phi3ForCausalLM" in listed
                    and "phi3.so" not in refused, (out + err).strip())

        case = ref["cases"][0]
        key = "native" if ref["dtype"] == "float32" else "f32_compute"
        try:
            tokens, _ = self.generate(self.fixture, case["prompt"], ref["n_new"],
                                      plugin_dir=False, env_path=self.plugin_dir)
            self.result("PAGODA_PLUGIN_PATH finds the plugin (case 0 greedy tokens)",
                        tokens == case[key]["greedy"], f"got {tokens}")
        except (RuntimeError, ValueError) as e:
            self.result("PAGODA_PLUGIN_PATH finds the plugin", False, str(e))

        # Without the plugin, nothing claims the architecture (unless an installed copy does).
        rc, out, _ = self.run(["plugins"], plugin_dir=False)
        if "Phi3ForCausalLM" in out:
            print("SKIP: without --plugin-dir: an installed phi3 plugin claims Phi3ForCausalLM")
            return
        rc, out, err = self.run(["generate", "--model", self.fixture, "--prompt-ids", "5"],
                                plugin_dir=False)
        self.result("without the plugin, Phi3ForCausalLM is refused by name",
                    rc != 0 and "Phi3ForCausalLM" in err and "no plugin claims" in err, err)

    # ---- refusals ------------------------------------------------------------------------
    def edited_fixture(self, name, edit):
        """A copy of the fixture whose config.json went through edit(dict)."""
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        for f in os.listdir(self.fixture):
            if f not in ("config.json", "reference.json"):
                os.symlink(os.path.join(self.fixture, f), os.path.join(d, f))
        with open(os.path.join(self.fixture, "config.json")) as f:
            cfg = json.load(f)
        edit(cfg)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        return d

    def expect_refusal(self, name, edit, *needles):
        model = self.edited_fixture(name, edit)
        rc, out, err = self.run(["generate", "--model", model, "--prompt-ids", "5,6"])
        missing = [n for n in needles if n not in err]
        self.result(f"refuses {name}, naming {', '.join(needles)}", rc != 0 and not missing,
                    f"exit {rc}, stderr: {err.strip()!r}")

    def check_refusals(self):
        def longrope(c):
            c["rope_parameters"] = {"rope_type": "longrope", "rope_theta": 10000.0,
                                    "short_factor": [1.0] * 8, "long_factor": [4.0] * 8,
                                    "original_max_position_embeddings": 64}

        def old_su(c):
            del c["rope_parameters"]
            c["rope_theta"] = 10000.0
            c["rope_scaling"] = {"type": "su", "short_factor": [1.0] * 8,
                                 "long_factor": [4.0] * 8}

        def softcap(c):
            c["logit_softcapping"] = 30.0

        def gelu(c):
            c["hidden_act"] = "gelu_new"

        def kv_heads(c):
            c["num_key_value_heads"] = 4

        self.expect_refusal("longrope", longrope, "longrope", "rope_parameters.rope_type")
        self.expect_refusal("su-rope-scaling", old_su, "\"su\"", "rope_scaling.type")
        self.expect_refusal("an-unknown-key", softcap, "logit_softcapping", "config.json")
        self.expect_refusal("another-activation", gelu, "hidden_act", "gelu_new")
        # 4 kv heads imply qkv_proj [64 + 2 * 64, 64]; the checkpoint's is [128, 64].
        self.expect_refusal("qkv_proj-disagreeing-with-config", kv_heads,
                            "qkv_proj.weight", "[128, 64]", "[192, 64]")

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pagoda", default="pagoda", help="the pagoda binary (default: on PATH)")
    ap.add_argument("--plugin-dir", required=True, help="the folder holding phi3.so")
    ap.add_argument("--fixture", action="append",
                    help="a fixture folder (repeatable; default: tests/fixtures/models/phi3-*)")
    a = ap.parse_args()
    if not a.fixture:
        models = os.path.join(HERE, "..", "..", "tests", "fixtures", "models")
        a.fixture = sorted(os.path.join(models, d) for d in os.listdir(models)
                           if d.startswith("phi3-"))
    pagoda = shutil.which(a.pagoda)
    if not pagoda:
        print(f"FAIL: no pagoda binary at '{a.pagoda}' (set --pagoda or PATH)")
        print("golden: 0 passed, 1 failed")
        return 1
    g = Golden(pagoda, os.path.abspath(a.plugin_dir))
    print(f"golden: {pagoda}, plugins from {g.plugin_dir}")
    try:
        refs = []
        for fixture in a.fixture:
            g.fixture = os.path.abspath(fixture)
            print(f"golden: fixture {g.fixture}")
            refs.append(g.check_reference())
            g.check_knobs_bite(refs[-1])
        g.fixture = os.path.abspath(a.fixture[0])
        g.check_plugin_path(refs[0])
        g.check_refusals()
    finally:
        g.close()
    print(f"golden: {g.passed} passed, {g.failed} failed")
    return 0 if g.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
