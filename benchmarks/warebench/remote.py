"""The `warehouse` group (a remote cold start): a lazy `ware mount` from nginx (and from s3s-fs on
the long link) and a first job, against `curl | tar -x` and `curl | zstd -d | tar -x` and the
same job; on loopback, on a link capped with tc tbf, and on a long link through the delaying
proxy; its section and charts.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import statistics
import subprocess
import time

from pathlib import Path

from .harness import (
    BenchError,
    Ctx,
    MOUNT_TIMEOUT,
    drop_caches,
    detach_mounts_below,
    du_bytes,
    fmt_cmd,
    free_port,
    log,
    parse_ware_id,
    quiet,
    rm_rf,
    run,
    summarize,
    ware_stats,
    warn,
)
from .servers import DelayProxy, Nginx, S3_BUCKET, S3sFs, curl_s3, s3_env, s3_url

WBEGIN, WEND = "<!-- warehouse:begin -->", "<!-- warehouse:end -->"


# warefs: (a) a first run, no profile anywhere; warefs-prof: (b) a fresh store, the profile an
# earlier run on another store pushed; warefs-prof-c: (c) another job on the same image with
# (b)'s profile (issue 12); warefs-noguess: (a) with `prefetch.siblings_bytes` and
# `prefetch.opened_bytes` at 0, the ablation of what a mount with no profile reads ahead (opened
# files whole, the small files beside them).
# warefs-local: the floor the network should be hidden down to (issue 12): the same job on a
# mount of the source store, which holds the ware whole with its learned profile, cold cache.
WH_TOOLS = ["warefs", "warefs-noguess", "warefs-prof", "warefs-prof-c", "warefs-local", "tar",
            "tar.zst"]
# On the long (delayed) link the same again, from an S3 warehouse (s3s-fs) instead of nginx.
WH_S3_TOOLS = ["warefs-s3", "warefs-noguess-s3", "warefs-prof-s3", "tar-s3", "tar.zst-s3"]
WH_ALL_TOOLS = WH_TOOLS + WH_S3_TOOLS
# The job of the warehouse group: the mount group's plus a Python import that reads a few MB
# of scattered files (numpy), the shape of "a first real program" the warehouses issue names.
WH_JOB = "ls /usr/bin; /usr/bin/dpkg -l; python3 -c \"import numpy\""
# (c): another job on the image, run with the profile the job above taught.
WH_JOB_C = "python3 -c \"import json\"; ls /usr/lib"
# Where the warehouse with profiles lives, beside the one without (same packs, hardlinked).
WH_PROF = "prof"
WH_NS = f"warefs-bench-{os.getpid()}"  # network namespace of the capped link
WH_NET = ("10.249.83.1", "10.249.83.2")  # host end, namespace end (a /30 on a veth pair)
WH_RTT_NS = f"warefs-bench-rtt-{os.getpid()}"  # network namespace of the long link
WH_RTT_NET = ("10.249.83.5", "10.249.83.6")
WH_LABEL = {"warefs": "ware mount (lazy, HTTP)",
            "warefs-noguess": "ware mount (lazy, HTTP, no read-ahead without a profile)",
            "warefs-prof": "ware mount (lazy, HTTP, pushed profile)",
            "warefs-prof-c": "ware mount (lazy, HTTP, another job's profile)",
            "warefs-local": "ware mount (local store, the ware whole, its profile)",
            "tar": "curl | tar -x",
            "tar.zst": "curl | zstd -d | tar -x",
            "warefs-s3": "ware mount (lazy, S3)",
            "warefs-noguess-s3": "ware mount (lazy, S3, no read-ahead without a profile)",
            "warefs-prof-s3": "ware mount (lazy, S3, pushed profile)",
            "tar-s3": "curl (S3) | tar -x",
            "tar.zst-s3": "curl (S3) | zstd -d | tar -x"}
WH_SHORT = {"warefs": "ware mount", "warefs-noguess": "ware, no guesses",
            "warefs-noguess-s3": "ware S3, no guesses", "warefs-prof": "ware + profile",
            "warefs-prof-c": "ware + other profile", "warefs-local": "ware, local store",
            "tar": "curl | tar",
            "tar.zst": "curl | zstd | tar", "warefs-s3": "ware mount S3",
            "warefs-prof-s3": "ware + profile S3", "tar-s3": "S3 | tar",
            "tar.zst-s3": "S3 | zstd | tar"}
WH_SPEEDUP_TARGET = 10  # issue 4: ≥10x faster than download-and-unpack at 10 ms RTT, 1 Gbit/s


def wh_base(tool: str) -> str:
    """The warefs way a peer is compared with: the one over the same protocol."""
    return "warefs-s3" if tool.endswith("-s3") else "warefs"


def wh_job(tool: str) -> str:
    return WH_JOB_C if tool.split("@", 1)[0].endswith("-c") else WH_JOB


def metadata_ms(log: Path) -> dict | None:
    """Where the mount's start went, as the daemon logged it ("fetched the ware's metadata"):
    the manifest fetched and decoded, then the indexes, marker and profiles (the nodes stored
    meanwhile), in ms."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    found = re.findall(r"fetched the ware's metadata .*?manifest_ms=(\d+) side_ms=(\d+) "
                       r"store_ms=(\d+)", text)
    if not found:
        return None
    a, b, c = (int(x) for x in found[0])
    return {"manifest": a, "side": b, "store": c}


def link_kind(link: str) -> str:
    return "loopback" if link == "loopback" else "rtt" if link.startswith("rtt") else "capped"


def link_title(link: str, doc: dict | None = None) -> str:
    if link == "loopback":
        return "loopback, no cap"
    if link.startswith("rtt"):
        info = ((doc or {}).get("results", {}).get("_setup", {}).get("links", {})
                .get(link, {}))
        ms = info.get("rtt_ms", link[3:].split("ms")[0])
        rate = info.get("rate_mbit")
        return (f"{ms} ms RTT (delaying proxy), "
                + (f"{rate / 1000:g} Gbit/s" if rate and rate >= 1000 else f"{rate} Mbit/s"))
    return f"capped at {link.replace('mbit', ' Mbit/s')}"
WH_TARGET = 0.05  # bytes fetched at start as a share of the image (issue 4; Slacker: 6.4%)


class WarehouseBench:
    """Scratch state of the warehouse group, and every server, namespace, daemon and mount it
    makes, so that close() (called from a finally) takes them all down."""

    def __init__(self, args, ctx: Ctx, work: Path):
        self.args, self.ctx = args, ctx
        self.u = work / "warehouse"
        self.www = self.u / "www"  # what nginx serves: the warehouse, tree.tar, tree.tar.zst
        self.mnt = self.u / "mnt"
        self.dest = self.u / "dest"
        self.fresh = self.u / "fresh-store"
        self.servers: dict[str, Nginx] = {}
        self.s3: dict[str, S3sFs] = {}
        self.proxies: dict[str, DelayProxy] = {}
        self.urls: dict[str, dict] = {}  # link -> {"http": URL, "s3": ENDPOINT}
        self.netns = None
        self.extra_ns: list[tuple[str, str]] = []  # (namespace, host veth) of the long link
        self.src = self.u / "src-store"
        self.ware_id = None
        self.daemon_stores: set[Path] = set()

    # --- setup (untimed) ---------------------------------------------------------------------
    def prepare(self) -> dict:
        self.u.mkdir(parents=True)
        self.www.mkdir()
        self.mnt.mkdir()
        src = self.src
        log("warehouse setup: ware pack --devices keep, ware push file:// (untimed)")
        ran = run([self.ctx.ware, "--store", src, "pack", "--devices", "keep", self.ctx.tree],
                  what="packing the ware to push")
        self.ware_id = parse_ware_id(ran)
        run([self.ctx.ware, "-q", "--store", src, "push", self.ware_id, f"file://{self.www}"],
            what="pushing the ware to the warehouse directory")
        wh_bytes = du_bytes(self.www)
        log("warehouse setup: tar -cf and zstd of the tree (untimed)")
        run(["tar", "-cf", self.www / "tree.tar", "-C", self.ctx.tree, "."],
            what="making the tar")
        run(["zstd", "-q", "-T0", self.www / "tree.tar", "-o", self.www / "tree.tar.zst"],
            what="compressing the tar")
        for dirpath, dirnames, filenames in os.walk(self.www):
            os.chmod(dirpath, 0o755)
            for n in filenames:
                os.chmod(os.path.join(dirpath, n), 0o644)
        packs = list((self.www / "packs").glob("*.pack"))
        return {"ware_id": self.ware_id, "warehouse_bytes": wh_bytes,
                "warehouse_packs": len(packs),
                "warehouse_pack_bytes": sum(p.stat().st_size for p in packs),
                "tar_bytes": (self.www / "tree.tar").stat().st_size,
                "tar_zst_bytes": (self.www / "tree.tar.zst").stat().st_size,
                "commands": {
                    "push": "ware --store SRC pack --devices keep TREE; "
                            "ware --store SRC push ID file://$WWW",
                    "tar": "tar -cf $WWW/tree.tar -C TREE .",
                    "zstd": "zstd -q -T0 $WWW/tree.tar -o $WWW/tree.tar.zst"}}

    def start_servers(self, links: list[str]) -> dict:
        info = {}
        port = free_port()
        for link in links:
            kind = link_kind(link)
            if kind == "loopback":
                srv = Nginx(self.u / "nginx-loopback", self.www, "127.0.0.1", port)
            elif kind == "capped":
                self.make_capped_link()
                srv = Nginx(self.u / "nginx-capped", self.www, WH_NET[1], port,
                            netns=self.netns)
            else:
                cmds = self.make_link(WH_RTT_NS, WH_RTT_NET, f"{self.args.rtt_mbit}mbit",
                                      "r")
                srv = Nginx(self.u / "nginx-rtt", self.www, WH_RTT_NET[1], port,
                            netns=WH_RTT_NS)
            self.servers[link] = srv
            srv.start()
            info[link] = {"url": srv.url, "netns": srv.netns, "kind": kind}
            self.urls[link] = {"http": srv.url}
            if kind == "capped":
                info[link]["rate_mbit"] = self.args.cap_mbit
            if kind == "rtt":
                info[link].update(self.start_rtt(link, srv, port, cmds))
        info["profile"] = self.learn_profile()
        return info  # the source store stays, for warefs-local; close() removes it

    def learn_profile(self) -> dict:
        """(b)'s profile: the job runs once on a mount of the source store (which holds the
        ware whole), which learns the ware's profile; it is pushed to the warehouses under
        WH_PROF, beside the ones without profiles (untimed)."""
        log("warehouse setup: the job on a local mount to learn the profile; ware push of it "
            "(untimed)")
        run([self.ctx.ware, "--store", self.src, "mount", self.ware_id, self.mnt],
            what="mounting to learn the profile")
        try:
            run(["chroot", self.mnt, "/bin/sh", "-c", WH_JOB], what="the job, to learn",
                timeout=MOUNT_TIMEOUT, group=True)
        finally:
            run([self.ctx.ware, "--store", self.src, "umount", self.mnt], what="ware umount")
        shown = run([self.ctx.ware, "--store", self.src, "--json", "profile", "show",
                     f"ware:{self.ware_id}"], what="ware profile show")
        prof = json.loads(shown.stdout)
        run([self.ctx.ware, "--store", self.src, "daemon", "stop"], what="ware daemon stop")
        dst = self.www / WH_PROF
        dst.mkdir()
        for name in ("warefs-warehouse", "wares", "packs"):
            run(["cp", "-al", self.www / name, dst / name], what="linking the warehouse")
        pushed = run([self.ctx.ware, "-q", "--store", self.src, "--json", "push", "--shared",
                      self.ware_id, f"file://{dst}"], what="pushing the profile")
        out = {"profile_blocks": len(prof.get("blocks") or []),
               "profile_chunks": prof.get("chunks"), "profile_bytes": prof.get("bytes"),
               "push": json.loads(pushed.stdout)}
        for link, s3 in self.s3.items():
            if any(t.endswith("-s3") for t in self.args.wh_tools):
                run([self.ctx.ware, "-q", "--store", self.src, "push", self.ware_id,
                     s3_url(s3.direct, WH_PROF)], env_extra=s3_env(),
                    what="pushing the ware and its profile to s3s-fs", timeout=900)
        return out

    def start_rtt(self, link: str, srv: Nginx, port: int, cmds: list[str]) -> dict:
        """The long link: nginx and s3s-fs in their namespace behind a 1 Gbit/s tbf, each
        reached through a delaying proxy on the host. Fills the S3 bucket (untimed)."""
        s3port = free_port()
        s3 = S3sFs(self.u / "s3s-fs", self.u / "s3root", WH_RTT_NET[1], s3port,
                   netns=WH_RTT_NS)
        self.s3[link] = s3
        s3.start()
        direct = f"{WH_RTT_NET[1]}:{s3port}"
        s3.direct = direct
        s3_wanted = any(t.endswith("-s3") for t in self.args.wh_tools)
        if s3_wanted:
            log("warehouse setup: ware push to s3s-fs, curl PUT of tree.tar and tree.tar.zst "
                "(untimed)")
            run([self.ctx.ware, "-q", "--store", self.src, "push", self.ware_id,
                 s3_url(direct)], env_extra=s3_env(), what="pushing the ware to s3s-fs",
                timeout=900)
        for name in ("tree.tar", "tree.tar.zst") if s3_wanted else ():
            run(["bash", "-c", f"{curl_s3(direct)}/{name} -T {shlex.quote(str(self.www / name))}"
                               " -o /dev/null"], what=f"uploading {name} to s3s-fs", timeout=900)
        rtt = self.args.rtt_ms
        hp = DelayProxy(self.u / "proxy-http", f"{WH_RTT_NET[1]}:{port}", rtt)
        sp = DelayProxy(self.u / "proxy-s3", direct, rtt)
        self.proxies[link], self.proxies[link + "-s3"] = hp, sp
        hp.start()
        sp.start()
        self.urls[link] = {"http": f"http://{hp.addr}", "s3": sp.addr}
        # What the proxy adds, measured: 20 small requests on one connection (keep-alive).
        probe = run(["curl", "-sS", "-w", "%{time_starttransfer}\n", "-r", "0-99"]
                    + ["-o", "/dev/null", f"http://{hp.addr}/tree.tar"] * 21,
                    what="probing the delaying proxy")
        ttfb = [float(x) * 1000 for x in probe.stdout.split()]
        return {"rtt_ms": rtt, "rate_mbit": self.args.rtt_mbit,
                "http_proxy": f"http://{hp.addr} -> {srv.url}",
                "s3_proxy": f"http://{sp.addr} -> http://{direct}",
                "proxy_command": hp.command, "link_commands": cmds,
                "s3_bucket_bytes": du_bytes(self.u / "s3root" / S3_BUCKET),
                "first_request_ms": ttfb[0],
                "keepalive_request_ms_median": statistics.median(ttfb[1:]),
                "keepalive_request_ms_min": min(ttfb[1:]),
                "keepalive_request_ms_max": max(ttfb[1:])}

    def make_link(self, ns: str, net: tuple[str, str], rate: str, tag: str) -> list[str]:
        """A network namespace joined to the host by a veth pair, each end's egress capped with
        tc tbf at rate; returns the commands."""
        host_if, ns_if = f"wf{tag}{os.getpid() % 100000}h", f"wf{tag}{os.getpid() % 100000}n"
        self.extra_ns.append((ns, host_if))
        steps = [["ip", "netns", "add", ns],
                 ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if,
                  "netns", ns],
                 ["ip", "addr", "add", f"{net[0]}/30", "dev", host_if],
                 ["ip", "link", "set", host_if, "up"],
                 ["ip", "-n", ns, "addr", "add", f"{net[1]}/30", "dev", ns_if],
                 ["ip", "-n", ns, "link", "set", ns_if, "up"],
                 ["ip", "-n", ns, "link", "set", "lo", "up"],
                 ["tc", "qdisc", "add", "dev", host_if, "root", "tbf", "rate", rate,
                  "burst", "1mb" if rate.endswith("000mbit") else "64kb", "latency", "100ms"],
                 ["tc", "-n", ns, "qdisc", "add", "dev", ns_if, "root", "tbf", "rate", rate,
                  "burst", "1mb" if rate.endswith("000mbit") else "64kb", "latency", "100ms"]]
        for st in steps:
            run(st, what="making the long link")
        return [fmt_cmd(st) for st in steps]

    def make_capped_link(self) -> None:
        """A network namespace joined to the host by a veth pair, each end's egress capped
        with tc tbf at --cap-mbit (no added latency: this kernel has no netem)."""
        ns, rate = WH_NS, f"{self.args.cap_mbit}mbit"
        host_if, ns_if = f"wfb{os.getpid() % 100000}h", f"wfb{os.getpid() % 100000}n"
        self.netns = ns  # set first: close() deletes it (and the veth with it) from here on
        self.veth = host_if
        burst = "64kb"
        steps = [["ip", "netns", "add", ns],
                 ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if,
                  "netns", ns],
                 ["ip", "addr", "add", f"{WH_NET[0]}/30", "dev", host_if],
                 ["ip", "link", "set", host_if, "up"],
                 ["ip", "-n", ns, "addr", "add", f"{WH_NET[1]}/30", "dev", ns_if],
                 ["ip", "-n", ns, "link", "set", ns_if, "up"],
                 ["ip", "-n", ns, "link", "set", "lo", "up"],
                 ["tc", "qdisc", "add", "dev", host_if, "root", "tbf", "rate", rate,
                  "burst", burst, "latency", "100ms"],
                 ["tc", "-n", ns, "qdisc", "add", "dev", ns_if, "root", "tbf", "rate", rate,
                  "burst", burst, "latency", "100ms"]]
        self.link_commands = [fmt_cmd(s) for s in steps]
        for s in steps:
            run(s, what="making the capped link")

    # --- runs --------------------------------------------------------------------------------
    def stop_daemon(self, store: Path) -> None:
        if store in self.daemon_stores:
            run([self.ctx.ware, "--store", store, "daemon", "stop"], what="ware daemon stop",
                timeout=120)
            self.daemon_stores.discard(store)

    def teardown(self) -> None:
        self.stop_daemon(self.fresh)
        self.stop_daemon(self.src)
        for p in (self.fresh, self.dest):
            if os.path.lexists(p):
                rm_rf(p)

    def once(self, link: str, tool: str, r: int) -> dict:
        self.teardown()
        srv = self.servers[link]
        what = f"{tool} cold start over {link}, run {r + 1}"
        s3 = tool.endswith("-s3")
        base = tool[:-3] if s3 else tool
        # warefs@NAME: the same with another ware binary (--wh-variants NAME=PATH).
        ware = self.args.wh_variants.get(base.split("@", 1)[1]) if "@" in base else self.ctx.ware
        base = base.split("@", 1)[0]
        env = s3_env() if s3 else None
        local = base == "warefs-local"
        lazy = base.startswith("warefs") and not local
        if local:
            root = self.mnt
            step = [ware, "--store", self.src, "mount", self.ware_id, self.mnt]
        elif lazy:
            root = self.mnt
            prefix = WH_PROF if base.startswith("warefs-prof") else ""
            wh = (s3_url(self.urls[link]["s3"], prefix) if s3 else
                  self.urls[link]["http"] + (f"/{prefix}" if prefix else ""))
            step = [ware, "--store", self.fresh, "--warehouse", wh, "mount",
                    self.ware_id, self.mnt]
        else:
            self.dest.mkdir()
            root = self.dest
            mid = " | zstd -d -q -c" if base == "tar.zst" else ""
            name = "tree.tar" + (".zst" if base == "tar.zst" else "")
            get = (f"{curl_s3(self.urls[link]['s3'])}/{name}" if s3 else
                   f"curl -sS --fail {shlex.quote(self.urls[link]['http'] + '/' + name)}")
            step = ["bash", "-c", f"set -o pipefail; {get}{mid}"
                                  f" | tar -x -C {shlex.quote(str(self.dest))}"]
        job = ["chroot", root, "/bin/sh", "-c", wh_job(tool)]
        proxy = self.proxies.get(link + "-s3") if s3 else None
        if lazy:  # the fresh store is made before the timing (by the settings of the ablation)
            keys = ["prefetch.siblings_bytes", "prefetch.opened_bytes"]
            steps = [["set", k, "0"] for k in keys] + ([] if base.startswith("warefs-noguess")
                                                       else [["unset", k] for k in keys])
            for st in steps:
                run([ware, "--store", self.fresh, "config", *st], what="ware config (fresh store)")
        drop_caches()
        mark = srv.mark()
        before = proxy.stats() if proxy else None
        t0 = time.monotonic()
        if lazy or local:
            self.daemon_stores.add(self.src if local else self.fresh)
        a = run(step, env_extra=env, what=what, timeout=MOUNT_TIMEOUT, group=not lazy)
        try:
            b = run(job, what=what + " (job)", timeout=MOUNT_TIMEOUT, group=True)
        except BenchError as e:
            if lazy and (self.fresh / "daemon.log").exists():
                tail = (self.fresh / "daemon.log").read_text(errors="replace")[-1500:]
                raise BenchError(f"{e}\n  daemon.log ends with:\n{tail}") from None
            raise
        total = time.monotonic() - t0
        m = {"seconds": total, "ready_s": a.seconds, "job_s": b.seconds,
             "user_s": a.user_s + b.user_s, "sys_s": a.sys_s + b.sys_s,
             "job_packages": sum(1 for ln in b.stdout.splitlines() if ln.startswith("ii ")),
             "job_output_lines": len(b.stdout.splitlines())}
        if lazy:
            m["fetched"] = self.mount_counters(ware)
            self.stop_daemon(self.fresh)  # everything fetched is now in the store and logged
            m["metadata_ms"] = metadata_ms(self.fresh / "daemon.log")
            m["http"] = srv.since(mark) if not s3 else self.s3_counts(proxy, before)
            m.update(ware_stats(self.ctx, self.fresh))
            m["local_bytes"] = du_bytes(self.fresh)
            m["local_how"] = "du -sb of the fresh store (daemon stopped)"
        elif local:
            self.stop_daemon(self.src)
            m["http"] = srv.since(mark)
            m["local_bytes"] = du_bytes(self.src)
            m["local_how"] = "du -sb of the source store (the ware whole)"
        else:
            m["http"] = srv.since(mark) if not s3 else self.s3_counts(proxy, before)
            m["local_bytes"] = du_bytes(self.dest)
            m["local_how"] = "du -sb of the extracted tree"
        m["command"] = (fmt_cmd(step, env) + " && " + fmt_cmd(job)).replace(str(self.u),
                                                                            "$WORK")
        self.teardown()
        return m

    def mount_counters(self, ware) -> dict | None:
        """What the mount fetched, and why (`ware --json daemon status`), right after the job."""
        try:
            r = run([ware, "--store", self.fresh, "--json", "daemon", "status"],
                    what="ware daemon status")
            mounts = json.loads(r.stdout).get("mounts") or []
            return mounts[0].get("fetched") if mounts else None
        except (BenchError, json.JSONDecodeError, AttributeError) as e:
            warn(f"the mount's fetch counters: {e}")
            return None

    @staticmethod
    def s3_counts(proxy: DelayProxy, before: dict) -> dict:
        """Requests and bytes through the S3 proxy since `before` (s3s-fs keeps no access
        log): bytes are what the server sent, response headers included."""
        time.sleep(0.05)  # let the proxy flush what it has read
        after = proxy.stats()
        return {"requests": after["requests"] - before["requests"],
                "bytes": after["bytes_down"] - before["bytes_down"],
                "bytes_up": after["bytes_up"] - before["bytes_up"],
                "connections": after["connections"] - before["connections"],
                "non_2xx": None, "by_kind": {},
                "how": "counted by the delaying proxy: bytes server to client (headers "
                       "included), requests = HTTP header ends client to server"}

    def close(self) -> None:
        """Takes down everything this group started, whatever state a failure left."""
        errors = []
        for store in list(self.daemon_stores):
            try:
                self.stop_daemon(store)
            except BenchError as e:
                errors.append(str(e))
        detach_mounts_below(self.u)
        if os.path.lexists(self.src):
            rm_rf(self.src)
        for srv in list(self.servers.values()) + list(self.s3.values()) + \
                list(self.proxies.values()):
            srv.stop()
        for ns, veth in self.extra_ns:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            if Path(f"/sys/class/net/{veth}").exists():
                subprocess.run(["ip", "link", "del", veth], capture_output=True)
        self.extra_ns = []
        if self.netns:
            r = subprocess.run(["ip", "netns", "del", self.netns], capture_output=True,
                               text=True)
            if r.returncode != 0 and self.netns in (quiet(["ip", "netns", "list"]) or ""):
                errors.append(f"ip netns del {self.netns}: {r.stderr.strip()}")
            # The veth pair goes with the namespace; make sure of it.
            if Path(f"/sys/class/net/{self.veth}").exists():
                subprocess.run(["ip", "link", "del", self.veth], capture_output=True)
            self.netns = None
        for e in errors:
            warn(f"cleanup: {e}")


def bench_warehouse(args, ctx: Ctx, work: Path) -> dict:
    wb = WarehouseBench(args, ctx, work)
    try:
        setup = wb.prepare()
        links = wh_links(args)
        setup["servers"] = wb.start_servers(links)
        setup["links"] = setup["servers"]
        if any(link_kind(x) == "capped" for x in links):
            setup["capped_link"] = wb.link_commands
        res = {"_setup": setup}
        tools = {link: [t for t in (WH_ALL_TOOLS if link_kind(link) == "rtt" else WH_TOOLS)
                        if t in args.wh_tools] for link in links}
        for link in links:  # --wh-variants: warefs@NAME next to each warefs way
            for t in list(tools[link]):
                if t.startswith("warefs"):
                    s3 = "-s3" if t.endswith("-s3") else ""
                    tools[link] += [f"{t.removesuffix('-s3')}@{v}{s3}"
                                    for v in args.wh_variants]
        setup["variants"] = {k: str(v) for k, v in args.wh_variants.items()}
        acc = {link: {t: {"runs": []} for t in tools[link]} for link in links}
        nruns = {link: {"loopback": args.runs, "capped": args.cap_runs or args.runs,
                        "rtt": args.rtt_runs or args.runs}[link_kind(link)] for link in links}
        for r in range(max(nruns.values())):
            for link in links:
                if r >= nruns[link]:
                    continue
                k = r % len(tools[link])
                for t in tools[link][k:] + tools[link][:k]:
                    m = wb.once(link, t, r)
                    acc[link][t]["command"] = m.pop("command")
                    acc[link][t]["runs"].append(m)
                    log(f"warehouse {link:9} {r + 1}/{nruns[link]} {t:10} {m['seconds']:7.2f} s "
                        f"(ready {m['ready_s']:.2f} + job {m['job_s']:.2f})  "
                        f"{m['http']['requests']} requests, {m['http']['bytes'] / 1e6:.1f} MB")
        for link in links:
            for t, v in acc[link].items():
                runs = v["runs"]
                v.update(summarize(runs))
                v["runs_done"] = len(runs)
                for k in ("ready_s", "job_s"):
                    v[k.replace("_s", "_median_s")] = statistics.median(x[k] for x in runs)
                v["requests"] = int(statistics.median(x["http"]["requests"] for x in runs))
                v["bytes_served"] = int(statistics.median(x["http"]["bytes"] for x in runs))
                v["local_bytes"] = int(statistics.median(x["local_bytes"] for x in runs))
                sb = [x["stats"]["stored_bytes"] for x in runs
                      if isinstance(x.get("stats"), dict) and "stored_bytes" in x["stats"]]
                v["store_stats_stored_bytes"] = int(statistics.median(sb)) if sb else None
                v["job_packages"] = sorted({x["job_packages"] for x in runs})
            pk = {t: acc[link][t]["job_packages"] for t in tools[link]
                  if wh_job(t) == WH_JOB}
            if len({tuple(p) for p in pk.values()}) != 1:
                warn(f"the job saw different package counts over {link}: {pk}")
            res[link] = acc[link]
        res["_links"] = links
        return res
    finally:
        wb.close()


WH_TIMING = (
    "wall clock (time.monotonic) from before the mount/download command to the end of the "
    "chroot job (ready_s + job_s); before each run the page cache is dropped, the ware daemon "
    "of the previous run stopped, and the store/extraction directory is fresh (a ware store "
    "made by `ware config set` of prefetch.siblings_bytes and prefetch.opened_bytes to 0, then "
    "`unset` but for the ablation, "
    "untimed; else empty). HTTP "
    "requests and bytes from nginx's access log ($body_bytes_sent), read after the run (for "
    "warefs after its daemon stopped)")


def wh_links(args) -> list[str]:
    links = ["loopback"]
    if args.cap_mbit:
        links.append(f"{args.cap_mbit}mbit")
    if args.rtt_ms:
        links.append(f"rtt{args.rtt_ms:g}ms-{args.rtt_mbit}mbit")
    return [x for x in links if not args.links or link_kind(x) in args.links]
