#!/usr/bin/env python3
"""`pagoda fetch` against the mock hub (tests/hub/mock_hub.py: a hub and a CDN on loopback
ports): a full fetch and the cache layout huggingface_hub writes; an interrupted download
resumed without fetching the done part again (and restarted when the server ignores Range,
checked without a download when it is already whole); a corrupted LFS blob refused; two fetches of
one repo at once (locks) ending with one good copy; offline mode; the token sent to the hub
and never to the CDN; --include/--exclude; a revision as branch, tag and commit; retries on
429 (Retry-After) and 500; gated, missing repo and revision messages; a full disk; and
`pagoda models` (--cached, rm keeping shared blobs). Each test has its own cache."""
import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
import http_harness as h  # noqa: E402
import mock_hub  # noqa: E402

suite = h.Suite("hub_fetch")
HUB = mock_hub.Hub()
REPO = "mock-org/model"
WEIGHTS = os.urandom(3 << 20)          # LFS: through the CDN
FILES = {
    "config.json": b'{"model_type": "llama", "hidden_size": 8}\n',
    "tokenizer.json": b'{"version": "1.0", "model": {"type": "BPE"}}\n',
    "model.safetensors": WEIGHTS,
    "pytorch_model.bin": os.urandom(4096),
    "original/consolidated.00.pth": os.urandom(2048),
    "README.md": b"# a mock model\n",
}
R = HUB.add_repo(REPO)
MAIN = R.commit(FILES, tags=("v1.0",))
DEV_FILES = dict(FILES, **{"config.json": b'{"model_type": "llama", "hidden_size": 16}\n'})
DEV = R.commit(DEV_FILES, ref="dev")
GATED = HUB.add_repo("mock-org/gated", gated=True)
GATED_MAIN = GATED.commit({"config.json": b"{}\n", "model.safetensors": os.urandom(1000)})


class Cache:
    """A fresh HF_HOME; run() starts `pagoda fetch`/`models` with the mock hub's endpoint."""

    def __init__(self):
        self.home = tempfile.mkdtemp(prefix="pgd-hub-")
        self.hub = os.path.join(self.home, "hub")
        self.repo_dir = os.path.join(self.hub, "models--mock-org--model")

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
        env.update(HF_ENDPOINT=HUB.url, HF_HOME=self.home, HF_HUB_DISABLE_PROGRESS_BARS="1")
        env.update(extra)
        return env

    def popen(self, *args, env=None, **kw):
        return subprocess.Popen([h.PAGODA, *args], env=env or self.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, **kw)

    def run(self, *args, env=None, ok=True, **kw):
        p = self.popen(*args, env=env, **kw)
        out, err = p.communicate(timeout=60)
        if ok:
            assert p.returncode == 0, f"exit {p.returncode}\n{err}"
        return p.returncode, out.strip(), err

    def snapshot(self, commit):
        return os.path.join(self.repo_dir, "snapshots", commit)

    def close(self):
        shutil.rmtree(self.home, ignore_errors=True)


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def listing(folder):
    out = set()
    for root, _, files in os.walk(folder):
        for f in files:
            out.add(os.path.relpath(os.path.join(root, f), folder))
    return out


def check_snapshot(c, commit, files):
    """The snapshot holds exactly files, each a relative link to blobs/{etag}."""
    snap = c.snapshot(commit)
    assert listing(snap) == set(files), (listing(snap), set(files))
    for path, data in files.items():
        link = os.path.join(snap, path)
        target = os.readlink(link)
        assert not os.path.isabs(target), target
        etag = sha256(data) if mock_hub.is_lfs(path) else mock_hub.git_blob_id(data)
        depth = path.count("/")
        assert target == "../" * depth + "../../blobs/" + etag, (path, target)
        with open(link, "rb") as f:
            assert f.read() == data, path
    assert not [b for b in os.listdir(os.path.join(c.repo_dir, "blobs"))
                if b.endswith(".incomplete")]


DEFAULT = {p: FILES[p] for p in ("config.json", "tokenizer.json", "model.safetensors")}


def cdn_gets(digest):
    return HUB.requests("cdn", "GET", digest)


# ---- tests ---------------------------------------------------------------------------------

def full_fetch():
    c = Cache()
    _, out, err = c.run("fetch", REPO)
    assert out == c.snapshot(MAIN), out
    check_snapshot(c, MAIN, DEFAULT)
    with open(os.path.join(c.repo_dir, "refs", "main")) as f:
        assert f.read() == MAIN
    # transformers asks for generation_config.json by name: the marker says it is absent.
    assert os.path.isfile(os.path.join(c.repo_dir, ".no_exist", MAIN, "generation_config.json"))
    assert not os.path.exists(os.path.join(c.repo_dir, ".no_exist", MAIN, "config.json"))
    assert "model.safetensors" in err and "done" in err, err
    # A second fetch asks the API only: nothing is downloaded again.
    n = len(HUB.log)
    c.run("fetch", REPO)
    new = HUB.log[n:]
    assert [r["path"] for r in new] == [f"/api/models/{REPO}/revision/main"], new
    c.close()


def token_only_to_hub():
    c = Cache()
    n = len(HUB.log)
    c.run("fetch", REPO, env=c.env(HF_TOKEN="hf_secret"))
    hub = [r for r in HUB.log[n:] if r["host"] == "hub"]
    cdn = [r for r in HUB.log[n:] if r["host"] == "cdn"]
    assert hub and cdn, HUB.log[n:]
    assert all(r["headers"].get("authorization") == "Bearer hf_secret" for r in hub), hub
    assert all("authorization" not in r["headers"] for r in cdn), cdn
    c.close()


def resume_after_cut():
    """The CDN cuts the connection half-way; with no retries the fetch fails and keeps the
    partial file; the next fetch asks only for the rest (Range) and the blob is whole."""
    c = Cache()
    digest = sha256(WEIGHTS)
    HUB.faults["cut:model.safetensors"] = 1
    n = len(cdn_gets(digest))
    rc, _, err = c.run("fetch", REPO, "--max-retries", "0", ok=False)
    assert rc == 1 and "model.safetensors" in err, err
    part = os.path.join(c.repo_dir, "blobs", digest + ".incomplete")
    have = os.path.getsize(part)
    assert have == len(WEIGHTS) // 2, have
    assert not os.path.exists(os.path.join(c.snapshot(MAIN), "model.safetensors"))
    c.run("fetch", REPO)
    gets = cdn_gets(digest)[n:]
    assert len(gets) == 2, gets
    assert "range" not in gets[0]["headers"]
    assert gets[1]["headers"].get("range") == f"bytes={have}-", gets[1]["headers"]
    assert gets[0]["sent"] + gets[1]["sent"] == len(WEIGHTS), gets
    check_snapshot(c, MAIN, DEFAULT)
    c.close()


def retry_resumes_in_one_run():
    c = Cache()
    digest = sha256(WEIGHTS)
    HUB.faults["cut:model.safetensors"] = 1
    n = len(cdn_gets(digest))
    _, _, err = c.run("fetch", REPO)
    gets = cdn_gets(digest)[n:]
    assert len(gets) == 2 and gets[1]["headers"].get("range") == f"bytes={len(WEIGHTS) // 2}-"
    assert "resuming" in err, err
    check_snapshot(c, MAIN, DEFAULT)
    c.close()


def server_ignoring_range_restarts_the_file():
    c = Cache()
    digest = sha256(WEIGHTS)
    HUB.faults["cut:model.safetensors"] = 1
    rc, _, _ = c.run("fetch", REPO, "--max-retries", "0", ok=False)
    assert rc == 1
    HUB.faults["norange:model.safetensors"] = 1
    n = len(cdn_gets(digest))
    try:
        c.run("fetch", REPO)
    finally:
        del HUB.faults["norange:model.safetensors"]
    gets = cdn_gets(digest)[n:]
    assert len(gets) == 1 and gets[0]["headers"].get("range") and \
        gets[0]["sent"] == len(WEIGHTS), gets
    check_snapshot(c, MAIN, DEFAULT)
    c.close()


def complete_partial_file_is_checked_not_fetched():
    """A .incomplete file already as long as the blob (a run killed before the rename) is
    checked and moved in without a download; a wrong one is deleted and fails."""
    c = Cache()
    digest = sha256(WEIGHTS)
    blobs = os.path.join(c.repo_dir, "blobs")
    os.makedirs(blobs)
    with open(os.path.join(blobs, digest + ".incomplete"), "wb") as f:
        f.write(WEIGHTS[:-1] + bytes([WEIGHTS[-1] ^ 1]))
    n = len(cdn_gets(digest))
    rc, _, err = c.run("fetch", REPO, ok=False)
    assert rc == 1 and "checksum mismatch" in err, err
    assert not os.path.exists(os.path.join(blobs, digest + ".incomplete"))
    with open(os.path.join(blobs, digest + ".incomplete"), "wb") as f:
        f.write(WEIGHTS)
    c.run("fetch", REPO)
    assert len(cdn_gets(digest)) == n, "the complete partial file was downloaded again"
    check_snapshot(c, MAIN, DEFAULT)
    c.close()


def checksum_mismatch_refused():
    c = Cache()
    HUB.faults["corrupt:model.safetensors"] = 1
    try:
        rc, _, err = c.run("fetch", REPO, ok=False)
    finally:
        del HUB.faults["corrupt:model.safetensors"]
    assert rc == 1 and "checksum mismatch" in err, err
    blobs = os.listdir(os.path.join(c.repo_dir, "blobs"))
    assert sha256(WEIGHTS) not in blobs and not [b for b in blobs if "incomplete" in b], blobs
    assert not os.path.lexists(os.path.join(c.snapshot(MAIN), "model.safetensors"))
    c.run("fetch", REPO)   # the next try gets good bytes
    check_snapshot(c, MAIN, DEFAULT)
    c.close()


def concurrent_fetches_share_one_download():
    c = Cache()
    digest = sha256(WEIGHTS)
    HUB.faults["slow:model.safetensors"] = 1.5
    n = len(cdn_gets(digest))
    try:
        procs = [c.popen("fetch", REPO) for _ in range(2)]
        results = [p.communicate(timeout=60) for p in procs]
    finally:
        del HUB.faults["slow:model.safetensors"]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
        assert out.strip() == c.snapshot(MAIN)
    assert len(cdn_gets(digest)[n:]) == 1, cdn_gets(digest)[n:]
    assert any("waiting" in err for _, err in results), results
    check_snapshot(c, MAIN, DEFAULT)
    lock = os.path.join(c.hub, ".locks", "models--mock-org--model", digest + ".lock")
    assert os.path.isfile(lock), lock
    c.close()


def offline_uses_the_cache():
    c = Cache()
    c.run("fetch", REPO)
    n = len(HUB.log)
    _, out, _ = c.run("fetch", REPO, env=c.env(HF_HUB_OFFLINE="1"))
    assert out == c.snapshot(MAIN)
    _, out, _ = c.run("fetch", f"{REPO}@{MAIN}", env=c.env(HF_HUB_OFFLINE="1"))
    assert out == c.snapshot(MAIN)
    rc, _, err = c.run("fetch", f"{REPO}@dev", env=c.env(HF_HUB_OFFLINE="1"), ok=False)
    assert rc == 1 and "not in the cache" in err and "HF_HUB_OFFLINE" in err, err
    rc, _, err = c.run("fetch", "mock-org/other", env=c.env(HF_HUB_OFFLINE="1"), ok=False)
    assert rc == 1 and "mock-org/other@main is not in the cache" in err, err
    assert len(HUB.log) == n, HUB.log[n:]
    c.close()


def include_exclude():
    c = Cache()
    c.run("fetch", REPO, "--include", "*.bin", "--include", "original/")
    check_snapshot(c, MAIN, {**DEFAULT, "pytorch_model.bin": FILES["pytorch_model.bin"],
                             "original/consolidated.00.pth":
                                 FILES["original/consolidated.00.pth"]})
    c.close()
    c = Cache()
    c.run("fetch", REPO, "--exclude", "*.safetensors")
    check_snapshot(c, MAIN, {p: FILES[p] for p in ("config.json", "tokenizer.json")})
    c.close()
    c = Cache()
    c.run("fetch", REPO, "--include", "*", "--exclude", "original/*")
    check_snapshot(c, MAIN, {p: d for p, d in FILES.items() if not p.startswith("original/")})
    c.close()


def revisions_branch_tag_commit():
    c = Cache()
    dev_default = {p: DEV_FILES[p] for p in DEFAULT}
    _, out, _ = c.run("fetch", f"{REPO}@dev")
    assert out == c.snapshot(DEV)
    check_snapshot(c, DEV, dev_default)
    _, out, _ = c.run("fetch", REPO, "--revision", "v1.0")
    assert out == c.snapshot(MAIN)
    _, out, _ = c.run("fetch", f"{REPO}@{MAIN}")
    assert out == c.snapshot(MAIN)
    refs = {f: open(os.path.join(c.repo_dir, "refs", f)).read()
            for f in os.listdir(os.path.join(c.repo_dir, "refs"))}
    assert refs == {"dev": DEV, "v1.0": MAIN}, refs
    # The weights are the same in both commits: one blob.
    assert len([b for b in os.listdir(os.path.join(c.repo_dir, "blobs"))]) == 4
    c.close()


def retries_honour_retry_after():
    c = Cache()
    HUB.faults["429:config.json"] = 1
    HUB.faults["500:tokenizer.json"] = 2
    t0 = time.time()
    _, _, err = c.run("fetch", REPO)
    assert time.time() - t0 >= 1.0, "Retry-After: 1 was not honoured"
    assert "config.json: HTTP 429; retrying in 1.0 s" in err, err
    assert "tokenizer.json: HTTP 500; retrying" in err, err
    check_snapshot(c, MAIN, DEFAULT)
    HUB.faults["500:config.json"] = 100
    c2 = Cache()
    try:
        rc, _, err = c2.run("fetch", REPO, "--max-retries", "1", ok=False)
    finally:
        del HUB.faults["500:config.json"]
    assert rc == 1 and "HTTP 500" in err, err
    c.close()
    c2.close()


def gated_missing_and_bad_revision():
    c = Cache()
    rc, _, err = c.run("fetch", "mock-org/gated", ok=False)
    assert rc == 1 and "gated" in err and "HF_TOKEN" in err and "accept its license" in err, err
    rc, _, err = c.run("fetch", "mock-org/gated", env=c.env(HF_TOKEN="wrong"), ok=False)
    assert rc == 1 and "gated (HTTP 403" in err, err
    with open(os.path.join(c.home, "token"), "w") as f:   # the file `hf auth login` writes
        f.write(HUB.token + "\n")
    _, out, _ = c.run("fetch", "mock-org/gated")
    assert out.endswith(GATED_MAIN)
    rc, _, err = c.run("fetch", "mock-org/nope", ok=False)
    assert rc == 1 and "repository not found" in err, err
    rc, _, err = c.run("fetch", f"{REPO}@nope", ok=False)
    assert rc == 1 and "revision 'nope' not found" in err, err
    rc, _, err = c.run("fetch", "not a repo", ok=False)
    assert rc == 2 and "neither ORG/NAME nor a catalog name" in err, err
    c.close()


def disk_full_leaves_nothing_half_written():
    """A file size limit makes the write fail (EFBIG) as a full disk would (ENOSPC)."""
    c = Cache()

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    rc, _, err = c.run("fetch", REPO, "--max-retries", "0", ok=False, preexec_fn=limit)
    assert rc == 1 and "no room left" in err, err
    blobs = os.listdir(os.path.join(c.repo_dir, "blobs"))
    assert not [b for b in blobs if "incomplete" in b], blobs
    assert not os.path.lexists(os.path.join(c.snapshot(MAIN), "model.safetensors"))
    c.close()


def local_dir_gets_real_files():
    c = Cache()
    dest = os.path.join(c.home, "local")
    _, out, _ = c.run("fetch", REPO, "--local-dir", dest)
    assert out == dest
    assert listing(dest) == set(DEFAULT)
    for p, d in DEFAULT.items():
        assert not os.path.islink(os.path.join(dest, p))
        assert open(os.path.join(dest, p), "rb").read() == d
    c.close()


def models_cached_and_rm():
    c = Cache()
    c.run("fetch", REPO)
    c.run("fetch", f"{REPO}@dev")
    _, out, _ = c.run("models", "--cached")
    line = [l for l in out.splitlines() if l.startswith(REPO)]
    assert line and "dev = " + DEV[:12] in line[0] and "main, v1.0" not in line[0], out
    assert "main = " + MAIN[:12] in line[0], out
    assert "QUANT" in out.splitlines()[0] and " none " in line[0], out   # from its config.json
    _, out, _ = c.run("models", "rm", f"{REPO}@dev")
    assert "removed" in out, out
    assert not os.path.exists(c.snapshot(DEV))
    assert not os.path.exists(os.path.join(c.repo_dir, "refs", "dev"))
    # The weights blob is shared with main: it stays, and main still reads whole.
    check_snapshot(c, MAIN, DEFAULT)
    blobs = set(os.listdir(os.path.join(c.repo_dir, "blobs")))
    assert mock_hub.git_blob_id(DEV_FILES["config.json"]) not in blobs, blobs
    c.run("models", "rm", REPO)
    assert not os.path.exists(c.repo_dir)
    rc, _, err = c.run("models", "rm", REPO, ok=False)
    assert rc == 1 and "not in the cache" in err, err
    c.close()


def catalog_lists_and_names():
    c = Cache()
    _, out, _ = c.run("models")
    names = [l.split()[0] for l in out.splitlines()[1:] if l.strip() and not l.startswith(" ")]
    for n in ("qwen2.5-0.5b-instruct", "qwen3-8b", "llama-3.1-8b-instruct",
              "mistral-7b-instruct-v0.3", "smollm2-135m-instruct"):
        assert n in names, (n, out)
    assert any("gptq" in l for l in out.splitlines()) and any("awq" in l for l in out.splitlines())
    # A catalog of our own naming the mock repo: a short name fetches it.
    cat = os.path.join(c.home, "catalog.ini")
    with open(cat, "w") as f:
        f.write(f"[mock-small]\nrepo = {REPO}\narch = llama\nquant = none\nsize = 1M\n"
                "context = 128\nchat = none\ngated = false\n")
    _, out, _ = c.run("fetch", "mock-small", env=c.env(PAGODA_CATALOG=cat))
    assert out == c.snapshot(MAIN)
    _, out, _ = c.run("models", env=c.env(PAGODA_CATALOG=cat))
    assert "mock-small" in out and "main = " + MAIN[:12] in out, out
    with open(cat, "a") as f:
        f.write("colour = blue\n")
    rc, _, err = c.run("models", env=c.env(PAGODA_CATALOG=cat), ok=False)
    assert rc == 1 and "[mock-small] unknown key 'colour'" in err, err
    c.close()


if __name__ == "__main__":
    for t in (full_fetch, token_only_to_hub, resume_after_cut, retry_resumes_in_one_run,
              server_ignoring_range_restarts_the_file,
              complete_partial_file_is_checked_not_fetched,
              checksum_mismatch_refused, concurrent_fetches_share_one_download,
              offline_uses_the_cache, include_exclude, revisions_branch_tag_commit,
              retries_honour_retry_after, gated_missing_and_bad_revision,
              disk_full_leaves_nothing_half_written, local_dir_gets_real_files,
              models_cached_and_rm, catalog_lists_and_names):
        suite.run(t)
    HUB.close()
    suite.finish()
