"""The servers the warehouse group runs against, each on 127.0.0.1 or inside the group's network
namespace: nginx (`Nginx`), s3s-fs (`S3sFs`, started with the keys the tests use), and the
delaying proxy (`DelayProxy`, benchmarks/delay-proxy) that models a long link.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from pathlib import Path

from .harness import BenchError, REPO, fmt_cmd, wait_listening

DELAY_PROXY = REPO / "benchmarks" / "delay-proxy"
# s3s-fs as mount-tests/kit/src/servers.rs starts it (bucket, keys); region as the tests use it.
S3_AK, S3_SK, S3_BUCKET, S3_REGION = ("warefs-test-ak", "warefs-test-sk-0123456789", "wares",
                                      "us-east-1")


NGINX_CONF = """worker_processes 1;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format bench '$request_method $uri $status $body_bytes_sent "$http_range"';
    access_log {d}/access.log bench;
    default_type application/octet-stream;
    sendfile on;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    server {{
        listen {addr}:{port};
        root {root};
    }}
}}
"""


def stop_group(proc: subprocess.Popen) -> None:
    """Stops a server started in its own process group: SIGTERM, then SIGKILL after 5 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=5)
            break
        except subprocess.TimeoutExpired:
            continue


class Nginx:
    """A static nginx serving `root` at http://ADDR:PORT/ (optionally inside a network
    namespace), logging every request with its $body_bytes_sent; killed with its process group
    by stop()."""

    def __init__(self, d: Path, root: Path, addr: str, port: int, netns: str | None = None):
        self.d, self.root, self.addr, self.port, self.netns = d, root, addr, port, netns
        self.proc = None
        self.url = f"http://{addr}:{port}"
        self.log = d / "access.log"

    def start(self) -> None:
        (self.d / "tmp").mkdir(parents=True, exist_ok=True)
        (self.d / "nginx.conf").write_text(NGINX_CONF.format(
            d=self.d, addr=self.addr, port=self.port, root=self.root))
        argv = ["nginx", "-p", self.d, "-e", self.d / "error.log", "-c", self.d / "nginx.conf",
                "-g", "daemon off;"]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns] + argv
        self.proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        wait_listening(self.proc, self.addr, self.port, self._failed)

    def _failed(self, why: str) -> None:
        err = (self.d / "error.log").read_text() if (self.d / "error.log").exists() else ""
        self.stop()
        raise BenchError(f"nginx did not listen on {self.addr}:{self.port} ({why}); "
                         f"error.log: {err[-600:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            stop_group(self.proc)
        # Workers left in the group (the master died first) go too.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc = None

    def mark(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def since(self, mark: int) -> dict:
        """Requests and bytes served since mark (a size of the access log), by kind of key."""
        with open(self.log, "rb") as f:
            f.seek(mark)
            lines = f.read().decode(errors="replace").splitlines()
        kinds: dict[str, dict] = {}
        total, nbytes, bad = 0, 0, 0
        for ln in lines:
            parts = ln.split(" ", 4)
            if len(parts) < 4:
                continue
            uri, status, sent = parts[1], parts[2], int(parts[3])
            kind = ("manifest" if uri.startswith("/wares/") else
                    "pack index" if uri.endswith(".idx") else
                    "pack range" if uri.endswith(".pack") else
                    "marker" if uri == "/warefs-warehouse" else uri.lstrip("/"))
            k = kinds.setdefault(kind, {"requests": 0, "bytes": 0})
            k["requests"] += 1
            k["bytes"] += sent
            total += 1
            nbytes += sent
            bad += not status.startswith("2")
        return {"requests": total, "bytes": nbytes, "non_2xx": bad, "by_kind": kinds}


class DelayProxy:
    """benchmarks/delay-proxy in front of ADDR:PORT: a fixed one-way delay each way (rtt/2),
    one extra round trip per new connection (the handshake of a long link), bandwidth kept;
    its counters (requests, bytes each way) read with stats()."""

    def __init__(self, d: Path, upstream: str, rtt_ms: float):
        self.d, self.upstream, self.rtt_ms = d, upstream, rtt_ms
        self.proc = None
        self.addr = None
        self.stats_file = d / "stats.json"

    def start(self) -> None:
        self.d.mkdir(parents=True, exist_ok=True)
        ready = self.d / "ready"
        argv = [sys.executable, DELAY_PROXY, "--listen", "127.0.0.1:0", "--upstream",
                self.upstream, "--delay-ms", str(self.rtt_ms / 2), "--handshake-rtt",
                "--ready-file", ready, "--stats-file", self.stats_file]
        self.command = fmt_cmd(argv[1:]).replace(str(self.d.parent), "$WORK")
        self.proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.d / "stderr", "w"),
                                     start_new_session=True)
        t0 = time.monotonic()
        while not (ready.exists() and ready.read_text().endswith("\n")):
            if self.proc.poll() is not None or time.monotonic() - t0 > 10:
                self.stop()
                raise BenchError(f"delay-proxy did not start: "
                                 f"{(self.d / 'stderr').read_text()[-600:]}")
            time.sleep(0.02)
        self.addr = ready.read_text().strip()

    def stats(self) -> dict:
        old = json.loads(self.stats_file.read_text())["seq"] if self.stats_file.exists() else 0
        os.kill(self.proc.pid, signal.SIGUSR1)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5:
            try:
                st = json.loads(self.stats_file.read_text())
                if st["seq"] > old:
                    return st
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.01)
        raise BenchError("delay-proxy did not write its stats")

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.proc = None


class S3sFs:
    """s3s-fs serving ROOT (bucket S3_BUCKET = ROOT/wares) at ADDR:PORT, checking SigV4 with the
    keys mount-tests/kit/src/servers.rs uses; optionally inside a network namespace."""

    def __init__(self, d: Path, root: Path, addr: str, port: int, netns: str | None = None):
        self.d, self.root, self.addr, self.port, self.netns = d, root, addr, port, netns
        self.proc = None

    def start(self) -> None:
        self.d.mkdir(parents=True, exist_ok=True)
        (self.root / S3_BUCKET).mkdir(parents=True, exist_ok=True)
        argv = ["s3s-fs", "--host", self.addr, "--port", str(self.port), "--access-key", S3_AK,
                "--secret-key", S3_SK, self.root]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns] + argv
        self.proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.d / "stderr", "w"),
                                     start_new_session=True)
        wait_listening(self.proc, self.addr, self.port, self._failed)

    def _failed(self, why: str) -> None:
        self.stop()
        raise BenchError(f"s3s-fs did not listen on {self.addr}:{self.port} ({why}): "
                         f"{(self.d / 'stderr').read_text()[-600:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_group(self.proc)
        self.proc.wait()
        self.proc = None


def s3_env() -> dict:
    return {"AWS_ACCESS_KEY_ID": S3_AK, "AWS_SECRET_ACCESS_KEY": S3_SK, "AWS_REGION": S3_REGION}


def s3_url(endpoint: str, prefix: str = "") -> str:
    path = f"/{prefix}" if prefix else ""
    return (f"s3://{S3_BUCKET}{path}?endpoint=http://{endpoint}&allow_http=true"
            f"&region={S3_REGION}")


def curl_s3(endpoint: str) -> str:
    return (f"curl -sS --fail --aws-sigv4 aws:amz:{S3_REGION}:s3 --user {S3_AK}:{S3_SK} "
            f"-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' http://{endpoint}/{S3_BUCKET}")
