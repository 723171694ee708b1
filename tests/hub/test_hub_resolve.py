#!/usr/bin/env python3
"""A hub id or a catalog short name wherever a model is named: `pagoda generate --model
ORG/NAME` fetches the repo from the mock hub and runs it; a catalog short name does the same;
offline, the cached snapshot is used and a missing one is a clear error; `bench` takes vLLM's
--revision and --download-dir; with the hub down,
the cache is used with a warning (as huggingface_hub does). And the progress display: bars
and a total on a terminal, plain lines when HF_HUB_DISABLE_PROGRESS_BARS is set."""
import os
import pty
import shutil
import socket
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
import http_harness as h  # noqa: E402
import mock_hub  # noqa: E402

suite = h.Suite("hub_resolve")
HUB = mock_hub.Hub()
TINY_FILES = mock_hub.dir_files(h.TINY)
TINY = HUB.add_repo("mock-org/tiny-chat")
TINY_MAIN = TINY.commit(TINY_FILES)
TINY_DEV = TINY.commit(dict(TINY_FILES, **{"README.md": b"dev\n"}), ref="dev")


def env_for(home, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    env.update(HF_ENDPOINT=HUB.url, HF_HOME=home, HF_HUB_DISABLE_PROGRESS_BARS="1")
    env.update(extra)
    return env


def generate(home, model, *flags, **extra):
    p = subprocess.run([h.PAGODA, "generate", "--model", model, "--device", "cpu",
                        "--prompt", "hello", "--max-tokens", "3", "--ids", *flags],
                       env=env_for(home, PAGODA_LOG="info", **extra), capture_output=True,
                       text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def snapshot(home):
    return os.path.join(home, "hub", "models--mock-org--tiny-chat", "snapshots", TINY_MAIN)


def generate_with_hub_ids():
    home = tempfile.mkdtemp(prefix="pgd-resolve-")
    rc, out, err = generate(home, "mock-org/tiny-chat")
    assert rc == 0, err
    assert len(eval(out.strip().splitlines()[-1])) == 3, out   # three generated ids
    assert os.path.isfile(os.path.join(snapshot(home), "model.safetensors"))
    assert snapshot(home) in err, err   # the engine loaded the snapshot
    # the same, as ORG/NAME@commit and offline
    rc, _, err = generate(home, f"mock-org/tiny-chat@{TINY_MAIN}", HF_HUB_OFFLINE="1")
    assert rc == 0, err
    rc, _, err = generate(home, "mock-org/absent", HF_HUB_OFFLINE="1")
    assert rc == 1 and "mock-org/absent@main is not in the cache" in err, err
    shutil.rmtree(home, ignore_errors=True)


def generate_with_a_catalog_name():
    home = tempfile.mkdtemp(prefix="pgd-resolve-")
    cat = os.path.join(home, "catalog.ini")
    with open(cat, "w") as f:
        f.write("[tiny]\nrepo = mock-org/tiny-chat\narch = llama\nquant = none\nsize = 1M\n"
                "context = 512\nchat = ChatML\ngated = false\n")
    rc, _, err = generate(home, "tiny", PAGODA_CATALOG=cat)
    assert rc == 0, err
    assert snapshot(home) in err, err
    # A catalog entry with quant = fp8 runs its 16-bit repo quantized to FP8 at load.
    with open(cat, "a") as f:
        f.write("[tiny-fp8]\nrepo = mock-org/tiny-chat\narch = llama\nquant = fp8\nsize = 1M\n"
                "context = 512\nchat = ChatML\ngated = false\n")
    rc, _, err = generate(home, "tiny-fp8", PAGODA_CATALOG=cat)
    assert rc == 0 and "quantization fp8" in err, err
    rc, _, err = generate(home, "tiny", PAGODA_CATALOG=cat)
    assert rc == 0 and "quantization fp8" not in err, err
    rc, _, err = generate(home, "no-such-model", PAGODA_CATALOG=cat)
    assert rc == 1 and "not a directory, not a hub id" in err and "pagoda models" in err, err
    shutil.rmtree(home, ignore_errors=True)


def bench_with_revision_and_download_dir():
    """vLLM's --revision and --download-dir, on `pagoda bench throughput`."""
    home = tempfile.mkdtemp(prefix="pgd-resolve-")
    dl = os.path.join(home, "elsewhere")
    p = subprocess.run([h.PAGODA, "bench", "throughput", "--model", "mock-org/tiny-chat",
                        "--revision", "dev", "--download-dir", dl, "--device", "cpu",
                        "--num-prompts", "2", "--input-len", "4", "--output-len", "2",
                        "--warmup", "0"], env=env_for(home), capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    snap = os.path.join(dl, "models--mock-org--tiny-chat", "snapshots", TINY_DEV)
    assert os.path.isfile(os.path.join(snap, "config.json")), os.listdir(dl)
    with open(os.path.join(dl, "models--mock-org--tiny-chat", "refs", "dev")) as f:
        assert f.read() == TINY_DEV
    assert not os.path.exists(os.path.join(home, "hub")), "HF_HOME was used"
    shutil.rmtree(home, ignore_errors=True)


def generate_with_revision_and_download_dir():
    """vLLM's --revision and --download-dir, on `pagoda generate`."""
    home = tempfile.mkdtemp(prefix="pgd-resolve-")
    dl = os.path.join(home, "elsewhere")
    rc, _, err = generate(home, "mock-org/tiny-chat", "--revision", "dev", "--download-dir", dl)
    assert rc == 0, err
    snap = os.path.join(dl, "models--mock-org--tiny-chat", "snapshots", TINY_DEV)
    assert snap in err, err   # the engine loaded the dev snapshot from the download dir
    assert not os.path.exists(os.path.join(home, "hub")), "HF_HOME was used"
    shutil.rmtree(home, ignore_errors=True)


def hub_down_uses_the_cache():
    home = tempfile.mkdtemp(prefix="pgd-resolve-")
    rc, _, err = generate(home, "mock-org/tiny-chat")
    assert rc == 0, err
    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    rc, _, err = generate(home, "mock-org/tiny-chat", HF_ENDPOINT=dead)
    assert rc == 0, err
    assert "using the cached snapshot" in err and "cannot reach" in err, err
    shutil.rmtree(home, ignore_errors=True)


def run_on_a_terminal(home, **extra):
    """`pagoda fetch` with stderr on a pseudo-terminal; returns what it drew."""
    master, slave = pty.openpty()
    env = env_for(home, **extra)
    if "HF_HUB_DISABLE_PROGRESS_BARS" not in extra:
        del env["HF_HUB_DISABLE_PROGRESS_BARS"]
    p = subprocess.Popen([h.PAGODA, "fetch", "mock-org/tiny-chat"], env=env,
                         stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        drawn += chunk
    p.wait(timeout=60)
    os.close(master)
    assert p.returncode == 0, drawn
    return drawn.decode(errors="replace")


def progress_on_a_terminal():
    HUB.faults["slow:model.safetensors"] = 0.6
    try:
        home = tempfile.mkdtemp(prefix="pgd-resolve-")
        drawn = run_on_a_terminal(home)
        assert "\x1b[K  total [" in drawn and "files" in drawn, drawn[-2000:]
        assert "model.safetensors" in drawn and "/s" in drawn, drawn[-2000:]
        shutil.rmtree(home, ignore_errors=True)
        home = tempfile.mkdtemp(prefix="pgd-resolve-")
        drawn = run_on_a_terminal(home, HF_HUB_DISABLE_PROGRESS_BARS="1")
        assert "total [" not in drawn and "\x1b[" not in drawn, drawn[-2000:]
        assert "pagoda fetch: model.safetensors (371.3 KiB) done" in drawn, drawn[-2000:]
        shutil.rmtree(home, ignore_errors=True)
    finally:
        del HUB.faults["slow:model.safetensors"]


if __name__ == "__main__":
    suite.run(generate_with_hub_ids)
    suite.run(generate_with_a_catalog_name)
    suite.run(generate_with_revision_and_download_dir)
    suite.run(bench_with_revision_and_download_dir)
    suite.run(hub_down_uses_the_cache)
    suite.run(progress_on_a_terminal)
    HUB.close()
    suite.finish()
