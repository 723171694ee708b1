#!/usr/bin/env python3
"""The hub cache is shared with the Python ecosystem, in both directions, through the mock
hub: huggingface_hub (offline, HF_HUB_OFFLINE=1) finds every file `pagoda fetch` put there
(snapshot_download(..., local_files_only=True) returns the same snapshot, refs and
.no_exist markers are honoured, scan_cache_dir reads it without complaint); and pagoda
finds (offline and online, without downloading again) and serves a repo that
huggingface_hub downloaded from the mock hub. huggingface_hub runs in a child process so
that it reads HF_ENDPOINT / HF_HOME / HF_HUB_OFFLINE at import, as it does in real use."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
import http_harness as h  # noqa: E402
import mock_hub  # noqa: E402

suite = h.Suite("hub_interop")
HUB = mock_hub.Hub()
TINY_FILES = mock_hub.dir_files(h.TINY)
TINY_FILES["pytorch_model.bin"] = os.urandom(1000)   # not in pagoda's default set
TINY = HUB.add_repo("mock-org/tiny-chat")
TINY_MAIN = TINY.commit(TINY_FILES)
TINY_DEV = TINY.commit(dict(TINY_FILES, **{"README.md": b"dev\n"}), ref="dev")


def env_for(home, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    env.update(HF_ENDPOINT=HUB.url, HF_HOME=home, HF_HUB_DISABLE_PROGRESS_BARS="1",
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1")
    env.update(extra)
    return env


def pagoda(home, *args, **extra):
    p = subprocess.run([h.PAGODA, *args], env=env_for(home, **extra), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, f"pagoda {' '.join(args)}: exit {p.returncode}\n{p.stderr}"
    return p.stdout.strip()


def hf(home, code, **extra):
    """Runs code with huggingface_hub in a child; returns what it prints as JSON."""
    p = subprocess.run([sys.executable, "-c", code], env=env_for(home, **extra),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"huggingface_hub failed:\n{p.stderr[-3000:]}"
    return json.loads(p.stdout.strip().splitlines()[-1])


def huggingface_hub_finds_what_pagoda_fetched():
    home = tempfile.mkdtemp(prefix="pgd-interop-")
    snap = pagoda(home, "fetch", "mock-org/tiny-chat")
    dev = pagoda(home, "fetch", "mock-org/tiny-chat@dev")
    n = len(HUB.log)
    got = hf(home, """
import json
from huggingface_hub import snapshot_download, hf_hub_download, try_to_load_from_cache
from huggingface_hub import scan_cache_dir
from huggingface_hub.file_download import _CACHED_NO_EXIST
main = snapshot_download("mock-org/tiny-chat", local_files_only=True)
dev = snapshot_download("mock-org/tiny-chat", revision="dev", local_files_only=True)
cfg = hf_hub_download("mock-org/tiny-chat", "config.json")
absent = try_to_load_from_cache("mock-org/tiny-chat", "chat_template.jinja") is _CACHED_NO_EXIST
info = scan_cache_dir()
repos = {r.repo_id: sorted(rv.commit_hash for rv in r.revisions) for r in info.repos}
files = sorted(f.file_name for r in info.repos for rv in r.revisions for f in rv.files
               if rv.commit_hash == main.rsplit("/", 1)[1])
print(json.dumps({"main": main, "dev": dev, "cfg": cfg, "absent": absent, "repos": repos,
                  "files": files, "warnings": [str(w) for w in info.warnings]}))
""", HF_HUB_OFFLINE="1")
    assert got["main"] == snap and got["dev"] == dev, (got, snap, dev)
    assert got["cfg"] == os.path.join(snap, "config.json"), got
    assert got["absent"], "the .no_exist marker was not honoured"
    assert got["repos"] == {"mock-org/tiny-chat": sorted([TINY_MAIN, TINY_DEV])}, got
    assert got["files"] == sorted(f for f in TINY_FILES if f != "pytorch_model.bin"), got
    assert got["warnings"] == [], got
    assert len(HUB.log) == n, "offline huggingface_hub reached the hub"
    shutil.rmtree(home, ignore_errors=True)


def pagoda_serves_what_huggingface_hub_fetched():
    home = tempfile.mkdtemp(prefix="pgd-interop-")
    got = hf(home, """
import json
from huggingface_hub import snapshot_download
print(json.dumps({"path": snapshot_download("mock-org/tiny-chat",
                                            allow_patterns=["*.json", "*.safetensors"])}))
""")
    snap = got["path"]
    assert snap.endswith("/snapshots/" + TINY_MAIN), snap
    # Offline, pagoda resolves main through refs/ to the same snapshot.
    assert pagoda(home, "fetch", "mock-org/tiny-chat", HF_HUB_OFFLINE="1") == snap
    # Online, it asks the API and downloads nothing: every file is already linked.
    n = len(HUB.log)
    assert pagoda(home, "fetch", "mock-org/tiny-chat") == snap
    assert [r["path"] for r in HUB.log[n:]] == ["/api/models/mock-org/tiny-chat/revision/main"]
    # `pagoda serve --model ORG/NAME` offline loads that snapshot and answers.
    saved = dict(os.environ)
    os.environ.update(env_for(home, HF_HUB_OFFLINE="1"))
    try:
        with h.Server(model="mock-org/tiny-chat") as srv:
            st, _, body = h.post(srv.port, "/v1/completions",
                                 {"model": "mock-org/tiny-chat", "prompt": "hello", "max_tokens": 3,
                                  "temperature": 0})
            assert st == 200, (st, body[:300])
            assert json.loads(body)["usage"]["completion_tokens"] == 3, body[:300]
            assert snap in srv.log(), srv.log()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    shutil.rmtree(home, ignore_errors=True)


def pagoda_waits_for_huggingface_hubs_lock():
    """huggingface_hub holds .locks/models--ORG--NAME/{etag}.lock (filelock: flock(2))
    while it writes a blob; pagoda waits for it, then finds the blob and links it."""
    import filelock
    import hashlib
    home = tempfile.mkdtemp(prefix="pgd-interop-")
    digest = hashlib.sha256(TINY_FILES["model.safetensors"]).hexdigest()
    lock = os.path.join(home, "hub", ".locks", "models--mock-org--tiny-chat", digest + ".lock")
    os.makedirs(os.path.dirname(lock))
    held = filelock.FileLock(lock)
    held.acquire()
    p = subprocess.Popen([h.PAGODA, "fetch", "mock-org/tiny-chat"], env=env_for(home),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    assert p.poll() is None, "pagoda did not wait for the lock"
    held.release()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0 and "waiting" in err, err
    with open(os.path.join(out.strip(), "model.safetensors"), "rb") as f:
        assert f.read() == TINY_FILES["model.safetensors"]
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        print("[FAIL] hub_interop: the huggingface_hub package is missing "
              "(pip install -r scripts/requirements-test.txt)")
        print("[====] Synthesis: Tested: 1 | Passing: 0 | Failing: 1 | Crashing: 0")
        sys.exit(1)
    suite.run(huggingface_hub_finds_what_pagoda_fetched)
    suite.run(pagoda_serves_what_huggingface_hub_fetched)
    suite.run(pagoda_waits_for_huggingface_hubs_lock)
    HUB.close()
    suite.finish()
