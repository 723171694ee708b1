"""A local stand-in for the Hugging Face hub, for the fetch tests: two HTTP servers on
loopback ports, the hub and a second host playing the CDN that LFS files redirect to.

It speaks the parts of the hub protocol that huggingface_hub and pagoda use:
  GET  /api/models/{repo}/revision/{rev}     {"id", "sha", "siblings": [{"rfilename"}], ...}
  GET  /api/models/{repo}/tree/{rev}         [{"type", "path", "oid", "size", "lfs"?}]
  HEAD|GET /{repo}/resolve/{rev}/{path}      small files: 200, ETag = the git blob id;
                                             LFS files: 302 to the CDN, X-Linked-Etag = the
                                             SHA-256, X-Linked-Size; always X-Repo-Commit
  GET  (CDN) /lfs/{sha256}                   the bytes, with Range (206 / 416) support
Errors carry X-Error-Code / X-Error-Message as the hub's do (RepoNotFound,
RevisionNotFound, EntryNotFound, GatedRepo).

Faults a test switches on (Hub.faults, keyed by repo path or blob):
  "429:<path>"      n   answer 429 with Retry-After: 1 to the next n requests for the file
  "500:<path>"      n   answer 500 to the next n requests for the file
  "cut:<path>"      n   the next n CDN downloads send half the bytes asked and close
  "corrupt:<path>"  1   the CDN serves the file with one byte flipped
  "slow:<path>"     s   the CDN spreads the file over about s seconds
  "norange:<path>"  1   the CDN ignores Range headers (answers 200 with the whole file)
Every request is logged (Hub.log: dicts with host, method, path, headers, sent bytes)."""
import hashlib
import json
import os
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LFS_SUFFIXES = (".safetensors", ".bin", ".pth", ".gguf")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass   # clients that hang up (a cut transfer, a killed fetch) are part of the tests


def dir_files(path):
    """Every file of the folder path, {name: bytes}: a repo's files for Repo.commit."""
    files = {}
    for name in sorted(os.listdir(path)):
        with open(os.path.join(path, name), "rb") as f:
            files[name] = f.read()
    return files


def git_blob_id(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    def __init__(self, repo_id, gated=False):
        self.id = repo_id
        self.gated = gated
        self.commits = {}   # sha -> {path: bytes}
        self.refs = {}      # branch or tag -> sha

    def commit(self, files, ref="main", tags=()):
        """Adds a commit holding files ({path: bytes}) and points ref (and tags) at it."""
        seed = repr(sorted((p, hashlib.sha256(d).hexdigest()) for p, d in files.items()))
        sha = hashlib.sha1((self.id + seed + str(len(self.commits))).encode()).hexdigest()
        self.commits[sha] = dict(files)
        for r in (ref, *tags):
            self.refs[r] = sha
        return sha

    def resolve(self, rev):
        if rev in self.refs:
            return self.refs[rev]
        return rev if rev in self.commits else None


class Hub:
    def __init__(self, token="hf_mock_token"):
        self.repos = {}
        self.token = token
        self.faults = {}
        self.log = []
        self.lock = threading.Lock()
        self.blobs = {}     # sha256 -> bytes (what the CDN holds)
        self.hub = _Server(("127.0.0.1", 0), _handler(self, "hub"))
        self.cdn = _Server(("127.0.0.1", 0), _handler(self, "cdn"))
        self.url = f"http://127.0.0.1:{self.hub.server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self.cdn.server_address[1]}"
        for srv in (self.hub, self.cdn):
            threading.Thread(target=srv.serve_forever, daemon=True).start()

    def close(self):
        for srv in (self.hub, self.cdn):
            srv.shutdown()
            srv.server_close()

    def add_repo(self, repo_id, gated=False):
        r = Repo(repo_id, gated)
        self.repos[repo_id] = r
        return r

    def take_fault(self, kind, path):
        """The fault's value, counted down by one use (None when not armed)."""
        key = f"{kind}:{path}"
        with self.lock:
            v = self.faults.get(key)
            if v is None:
                return None
            if kind in ("429", "500", "cut"):
                if v <= 0:
                    return None
                self.faults[key] = v - 1
            return v

    def requests(self, host=None, method=None, path_part=""):
        with self.lock:
            return [r for r in self.log if (host is None or r["host"] == host)
                    and (method is None or r["method"] == method) and path_part in r["path"]]


def is_lfs(path):
    return path.endswith(LFS_SUFFIXES)


def _handler(hub, host):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def _record(self, sent=0):
            entry = {"host": host, "method": self.command, "path": self.path,
                     "headers": {k.lower(): v for k, v in self.headers.items()}, "sent": sent}
            with hub.lock:
                hub.log.append(entry)
            return entry

        def _send(self, status, body=b"", headers=None, ctype="application/json"):
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status, code, msg, extra=None):
            h = {"X-Error-Code": code, "X-Error-Message": msg, **(extra or {})}
            self._send(status, json.dumps({"error": msg}).encode(), h)

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            entry = self._record()
            try:
                if host == "cdn":
                    self._cdn(entry)
                else:
                    self._hub()
            except (BrokenPipeError, ConnectionResetError):
                pass

        # ---- the hub -----------------------------------------------------------------
        def _auth_ok(self, repo):
            if not repo.gated:
                return True
            auth = self.headers.get("Authorization", "")
            if not auth:
                self._error(401, "GatedRepo", f"Access to model {repo.id} is restricted. You "
                            "must have access to it and be authenticated to access it.")
                return False
            if auth != f"Bearer {hub.token}":
                self._error(403, "GatedRepo", f"Access to model {repo.id} is restricted and "
                            "you are not in the authorized list.")
                return False
            return True

        def _repo(self, repo_id):
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", f"Repository not found: {repo_id}")
            return repo

        def _hub(self):
            url = urllib.parse.urlsplit(self.path)
            parts = [urllib.parse.unquote(p) for p in url.path.split("/")]
            # /api/models/{org}/{name}/{revision|tree}/{rev}
            if len(parts) >= 7 and parts[1] == "api" and parts[2] == "models" \
                    and parts[5] in ("revision", "tree"):
                repo = self._repo(f"{parts[3]}/{parts[4]}")
                if repo is None or not self._auth_ok(repo):
                    return
                rev = "/".join(parts[6:])
                sha = repo.resolve(rev)
                if sha is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
                files = repo.commits[sha]
                if parts[5] == "revision":
                    body = {"_id": "0" * 24, "id": repo.id, "modelId": repo.id, "sha": sha,
                            "private": False, "gated": "manual" if repo.gated else False,
                            "disabled": False, "tags": [], "library_name": "transformers",
                            "lastModified": "2024-01-01T00:00:00.000Z",
                            "siblings": [{"rfilename": p} for p in sorted(files)]}
                else:
                    body = []
                    for p in sorted(files):
                        d = files[p]
                        e = {"type": "file", "oid": git_blob_id(d), "size": len(d), "path": p}
                        if is_lfs(p):
                            e["lfs"] = {"oid": hashlib.sha256(d).hexdigest(), "size": len(d),
                                        "pointerSize": 134}
                        body.append(e)
                return self._send(200, json.dumps(body).encode())
            # /{org}/{name}/resolve/{rev}/{path...}
            if len(parts) >= 6 and parts[3] == "resolve":
                repo = self._repo(f"{parts[1]}/{parts[2]}")
                if repo is None or not self._auth_ok(repo):
                    return
                sha = repo.resolve(parts[4])
                if sha is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {parts[4]}")
                path = "/".join(parts[5:])
                for kind, status in (("429", 429), ("500", 500)):
                    if hub.take_fault(kind, path):
                        return self._error(status, "", "busy" if status == 429 else "oops",
                                           {"Retry-After": "1"} if status == 429 else None)
                data = repo.commits[sha].get(path)
                if data is None:
                    return self._error(404, "EntryNotFound", f"{path} does not exist",
                                       {"X-Repo-Commit": sha})
                if is_lfs(path):
                    digest = hashlib.sha256(data).hexdigest()
                    with hub.lock:
                        hub.blobs[digest] = (path, data)
                    loc = f"{hub.cdn_url}/lfs/{digest}?X-Amz-Signature=mock"
                    return self._send(302, b"", {
                        "Location": loc, "X-Repo-Commit": sha, "ETag": f'"{git_blob_id(data)}"',
                        "X-Linked-Etag": f'"{digest}"', "X-Linked-Size": str(len(data))},
                        ctype="text/plain")
                return self._send(200, data, {"X-Repo-Commit": sha,
                                              "ETag": f'"{git_blob_id(data)}"'},
                                  ctype="application/octet-stream")
            self._error(404, "", f"no route {self.path}")

        # ---- the CDN -------------------------------------------------------------------
        def _cdn(self, entry):
            digest = urllib.parse.urlsplit(self.path).path.rsplit("/", 1)[-1]
            with hub.lock:
                found = hub.blobs.get(digest)
            if found is None:
                return self._send(404, b"no such blob", ctype="text/plain")
            path, data = found
            if hub.take_fault("corrupt", path):
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            start, status, headers = 0, 200, {"ETag": f'"{digest}"', "Accept-Ranges": "bytes"}
            rng = self.headers.get("Range")
            if rng and not hub.faults.get(f"norange:{path}"):
                start = int(rng.split("=")[1].split("-")[0])
                if start >= len(data):
                    return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                status = 206
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            body = data[start:]
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "HEAD":
                return
            if hub.take_fault("cut", path):
                half = body[: len(body) // 2]
                self.wfile.write(half)
                self.wfile.flush()
                entry["sent"] = len(half)
                self.close_connection = True
                return
            slow = hub.faults.get(f"slow:{path}")
            chunks = 20 if slow else 1
            step = max(1, (len(body) + chunks - 1) // chunks)
            for i in range(0, len(body), step):
                self.wfile.write(body[i:i + step])
                self.wfile.flush()
                entry["sent"] += len(body[i:i + step])
                if slow:
                    time.sleep(slow / chunks)

    return Handler


if __name__ == "__main__":
    # A manual run: a hub with one small repo, until interrupted.
    h = Hub()
    r = h.add_repo("mock-org/tiny")
    r.commit({"config.json": b'{"model_type": "llama"}\n',
              "model.safetensors": os.urandom(1 << 20)})
    print(f"HF_ENDPOINT={h.url} (CDN {h.cdn_url}); token {h.token}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        h.close()
