#!/usr/bin/env python3
"""The deployment files of examples/deploy/ beside the INI files (docs/DEPLOY.md):

- systemd/pagoda.service passes `systemd-analyze verify` (with ExecStart pointed at the
  built pagoda) without a word of complaint, and says what the deployment needs: serve with
  --config, Restart=on-failure, KillSignal=SIGTERM, TimeoutStopSec above the grace, reload by
  SIGHUP, a dedicated user, hardening. Without systemd-analyze the verify step is a visible
  SKIP, never a pass.
- container/Containerfile: a build stage on NVIDIA's CUDA devel image running the README's
  build commands, a runtime stage on the runtime image with the built tree, a user that is
  not root, a HEALTHCHECK on /health, serve --config of the file it copies in.
- k8s/*.yaml (PyYAML): a Deployment asking for nvidia.com/gpu with readiness on /health, a
  liveness probe, Prometheus scrape annotations, the API key from the Secret, the INI from the
  ConfigMap; a Service selecting its pods; every name that ties them together resolves; the
  ConfigMap's INI passes `pagoda config --check` and agrees with the Deployment (port, grace,
  the environment it references)."""
import configparser
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback

B = os.environ.get("PGD_BUILDDIR", ".")
S = os.environ.get("PGD_SRCDIR", "..")
PAGODA = os.path.join(B, "tools", "pagoda")
EX = os.path.join(S, "examples", "deploy")
passed = failed = 0


def run(fn):
    global passed, failed
    try:
        skipped = fn()
    except Exception:
        failed += 1
        print(f"[FAIL] deploy_files::{fn.__name__}")
        traceback.print_exc(file=sys.stdout)
        return
    if skipped:
        print(f"[SKIP] deploy_files::{fn.__name__}: {skipped}")
    else:
        passed += 1
        print(f"[PASS] deploy_files::{fn.__name__}")


def ini_grace(text):
    """[frontend.openai] grace of an INI text (the table's default, 30, when left out)."""
    cp = configparser.ConfigParser(inline_comment_prefixes=(";",), interpolation=None)
    cp.read_string(text)
    return float(cp.get("frontend.openai", "grace", fallback="30")), cp


def config_check(text, env):
    with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as f:
        f.write(text)
    try:
        r = subprocess.run([PAGODA, "config", "--check", f.name], capture_output=True,
                           text=True, env=dict(os.environ, **env), timeout=30)
    finally:
        os.unlink(f.name)
    assert r.returncode == 0 and r.stdout.endswith(": OK\n") and not r.stderr, (r.stdout,
                                                                                 r.stderr)


# ---- systemd ----------------------------------------------------------------------------

UNIT = os.path.join(EX, "systemd", "pagoda.service")


def unit_keys():
    keys = {}
    for line in open(UNIT):
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            k, v = line.split("=", 1)
            keys.setdefault(k, []).append(v)
    return keys


def seconds(v):
    m = re.fullmatch(r"(\d+)(s|min)?", v)
    assert m, v
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1)


def test_systemd_unit_says_what_a_deployment_needs():
    k = unit_keys()
    start = k["ExecStart"][0].split()
    assert start[1:3] == ["serve", "--config"], start
    assert k["Restart"] == ["on-failure"] and k["KillSignal"] == ["SIGTERM"], k
    grace, _ = ini_grace(open(os.path.join(EX, "gpu-8b.ini")).read())
    assert seconds(k["TimeoutStopSec"][0]) > max(grace, 30), (k["TimeoutStopSec"], grace)
    assert re.fullmatch(r"/\S*kill -HUP \$MAINPID", k["ExecReload"][0]), k["ExecReload"]
    assert k["User"][0] not in ("root", "0") and k["Group"][0] not in ("root", "0"), k
    for hardening in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                      "PrivateTmp=yes", "CapabilityBoundingSet=", "RestrictNamespaces=yes"):
        name, value = hardening.split("=")
        assert k.get(name) == [value], (hardening, k.get(name))


def test_systemd_analyze_verify():
    tool = shutil.which("systemd-analyze")
    if not tool:
        return "systemd-analyze is not installed (scripts/install-deps.sh installs systemd)"
    with tempfile.TemporaryDirectory() as d:
        unit = os.path.join(d, "pagoda.service")
        # verify wants ExecStart's program to exist: the one just built.
        text = open(UNIT).read().replace("/usr/local/bin/pagoda", os.path.abspath(PAGODA))
        with open(unit, "w") as f:
            f.write(text)
        r = subprocess.run([tool, "verify", unit], capture_output=True, text=True, timeout=60)
        said = [l for l in (r.stdout + r.stderr).splitlines() if "pagoda.service" in l]
        assert r.returncode == 0 and not said, (r.returncode, r.stdout, r.stderr)


# ---- the container file -------------------------------------------------------------------

def stages(path):
    """[(FROM line, [instructions])] with continuation lines joined."""
    out, cur = [], ""
    for line in open(path):
        line = line.rstrip("\n")
        if line.lstrip().startswith("#") and not cur:
            continue
        cur += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if line.endswith("\\"):
            continue
        if cur.startswith("FROM "):
            out.append((cur, []))
        elif cur and out:
            out[-1][1].append(cur)
        cur = ""
    return out


def readme_build_commands():
    """The README's build line: its commands up to and including make."""
    for line in open(os.path.join(S, "README.md")):
        if "./autogen.sh" in line and "./configure" in line:
            cmds = [c.strip() for c in line.strip().split("&&")]
            n = next(i for i, c in enumerate(cmds) if c.startswith("make"))
            return cmds[:n + 1]
    raise AssertionError("no build line in README.md")


def test_containerfile_shape():
    st = stages(os.path.join(EX, "container", "Containerfile"))
    assert len(st) >= 2, [s[0] for s in st]
    build, runtime = st[0], st[-1]
    assert re.search(r"nvidia/cuda:\S*-devel-\S* AS build$", build[0]), build[0]
    assert re.search(r"nvidia/cuda:\S*-runtime-", runtime[0]), runtime[0]
    # the README's build commands, in its order, each the start of a command of a RUN
    ran = [c.strip() for i in build[1] if i.startswith("RUN ") for c in i[4:].split("&&")]
    at = 0
    for want in readme_build_commands():
        while at < len(ran) and not ran[at].startswith(want):
            at += 1
        assert at < len(ran), (want, ran)
    rt = runtime[1]
    assert any(i.startswith("COPY --from=build ") for i in rt), rt
    users = [i.split()[1] for i in rt if i.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), users
    hc = [i for i in rt if i.startswith("HEALTHCHECK ")]
    assert hc and "/health" in hc[0], hc
    cmd = [i for i in rt if i.startswith(("CMD ", "ENTRYPOINT "))]
    conf = re.search(r'"--config", "([^"]+)"', " ".join(cmd))
    assert conf, cmd
    copied = [i.split() for i in rt if i.startswith("COPY ") and i.split()[-1] == conf.group(1)]
    assert copied, (conf.group(1), rt)
    src = os.path.join(S, copied[0][-2])
    config_check(open(src).read(), {"PAGODA_API_KEY": "x"})


# ---- Kubernetes -----------------------------------------------------------------------------

def manifests():
    import yaml
    docs = {}
    for name in sorted(os.listdir(os.path.join(EX, "k8s"))):
        if name.endswith(".yaml"):
            for d in yaml.safe_load_all(open(os.path.join(EX, "k8s", name))):
                assert d["apiVersion"] and d["metadata"]["name"], (name, d)
                assert d["kind"] not in docs, ("two of", d["kind"])
                docs[d["kind"]] = d
    return docs


def test_kubernetes_manifests_tie_together():
    try:
        import yaml  # noqa: F401
    except ImportError:
        raise AssertionError("PyYAML is missing: pip install -r scripts/requirements-test.txt")
    m = manifests()
    assert set(m) >= {"Deployment", "Service", "ConfigMap", "Secret"}, set(m)
    dep, svc, cm, sec = m["Deployment"], m["Service"], m["ConfigMap"], m["Secret"]
    assert dep["apiVersion"] == "apps/v1" and svc["apiVersion"] == "v1"
    spec = dep["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= pod_labels.items()
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["resources"]["limits"]["nvidia.com/gpu"] >= 1, c["resources"]

    def port_of(probe):
        p = probe["httpGet"]["port"]
        return ports[p] if isinstance(p, str) else p
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"
    assert "httpGet" in c["livenessProbe"] or "tcpSocket" in c["livenessProbe"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if "httpGet" in c.get(probe, {}):
            assert port_of(c[probe]) in ports.values(), probe
    for p in svc["spec"]["ports"]:
        t = p["targetPort"]
        assert (ports.get(t) if isinstance(t, str) else t) in ports.values(), p
    ann = spec["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/path"] == "/metrics"
    assert int(ann["prometheus.io/port"]) in ports.values(), ann
    # the INI: from the ConfigMap, mounted where --config says
    conf = c["args"][c["args"].index("--config") + 1]
    vols = {v["name"]: v for v in pod["volumes"]}
    (mount,) = [vm for vm in c["volumeMounts"] if conf.startswith(vm["mountPath"] + "/")]
    assert vols[mount["name"]]["configMap"]["name"] == cm["metadata"]["name"]
    text = cm["data"][os.path.relpath(conf, mount["mountPath"])]
    # the Secret through the environment the INI references
    env = {e["name"]: e for e in c["env"]}
    refs = set(re.findall(r"\$\{(\w+)\}", text))
    assert refs and refs <= set(env), (refs, set(env))
    for r in refs:
        ref = env[r]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == sec["metadata"]["name"], ref
        assert ref["key"] in {**sec.get("stringData", {}), **sec.get("data", {})}, ref
    config_check(text, {r: "x" for r in refs})
    grace, cp = ini_grace(text)
    assert pod["terminationGracePeriodSeconds"] > grace, (pod["terminationGracePeriodSeconds"],
                                                         grace)
    assert int(cp.get("frontend.openai", "port", fallback="8000")) in ports.values()
    assert cp.get("frontend.openai", "host") in ("0.0.0.0", "::"), "the pod's loopback only"


if __name__ == "__main__":
    for t in (test_systemd_unit_says_what_a_deployment_needs, test_systemd_analyze_verify,
              test_containerfile_shape, test_kubernetes_manifests_tie_together):
        run(t)
    print(f"[====] Synthesis: Tested: {passed + failed} | Passing: {passed} | "
          f"Failing: {failed} | Crashing: 0")
    sys.exit(1 if failed else 0)
