"""The `memory` group: the resident memory of one long-lived store daemon over
many `ware run`s (issue 19, item 13), against the bound its caches are documented to keep.

One store, the tree packed into it once (untimed); the first run starts the daemon and every
later run reuses it, as a job runner's daemon would be:

- `--memory-runs` (default 1,000) runs of a small job (`ls /usr/bin; cat /etc/os-release`),
  each a fresh lazy mount of the tree with its namespaces, scratch overlay and run record;
- then `--runs` runs of a job that reads every file of the tree (`tar -cf - --one-file-system
  / | cat`), which fills the daemon's chunk and directory caches to their budgets.

The daemon's VmRSS and RssAnon (/proc/PID/status) are sampled after runs 1, 10, 100, 250, 500
and 1,000 and after each read-all run; VmHWM (its peak) at the end. The peer is squashfuse
serving the same tree (image `mksquashfs TREE IMG -comp zstd`, cached with the run group's):
its VmRSS after reading every file of its mount the same way (`tar -cf - -C MNT . | cat`).

The entry point calls bench_memory, then report calls render_memory; running commands comes
from harness, the section header from render.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from . import harness, render

BEGIN, END = "<!-- memory:begin -->", "<!-- memory:end -->"
SMALL_JOB = "ls /usr/bin > /dev/null; cat /etc/os-release > /dev/null"
READ_ALL = "tar -cf - --one-file-system / | cat > /dev/null"
SAMPLES = [1, 10, 100, 250, 500, 1000, 2000, 5000]
MIB = 1 << 20
# The documented bound (docs/ARCHITECTURE.md, "Memory"): the daemon's chunk cache (256 MiB) and
# directory cache (32 MiB), RocksDB's memtables (128 MiB) and block cache (32 MiB), and a
# baseline of 32 MiB (code, thread stacks, tables of live mounts).
BOUND_MIB = 256 + 32 + 128 + 32 + 32


def status(pid: int) -> dict:
    """VmRSS, RssAnon, RssFile and VmHWM of `pid`, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out


class MemBench:
    def __init__(self, args, ctx, work: Path):
        self.args, self.ctx = args, ctx
        self.u = work / "memory"
        self.store = self.u / "store"
        self.sqmnt = self.u / "mnt-squashfs"

    def ware(self, *a, what=None, timeout=600):
        return harness.run([self.ctx.ware, "--store", self.store, *a], what=what, timeout=timeout)

    def formula(self, name: str, script: str) -> Path:
        p = self.u / f"{name}.json"
        p.write_text(json.dumps({"inputs": {"/": self.ware_id},
                                 "action": {"argv": ["/bin/sh", "-c", script]}}))
        return p

    def daemon_pid(self) -> int:
        st = json.loads(self.ware("--json", "daemon", "status", what="ware daemon status").stdout)
        if not st.get("running"):
            raise harness.BenchError("the store's daemon is not running after a run")
        return st["daemon"]["pid"]

    def squashfs_image(self) -> Path:
        """The run group's cached image of the tree, made here if missing."""
        import run_group
        d = run_group.cache_dir()
        d.mkdir(parents=True, exist_ok=True)
        img = d / f"{self.ctx.tree.name}.sqfs"
        if not img.exists():
            harness.log(f"memory setup: mksquashfs of the tree into {img} (untimed, kept)")
            tmp = img.with_name(img.name + ".tmp")
            harness.rm_rf(tmp)
            harness.run(["mksquashfs", self.ctx.tree, tmp, "-comp", "zstd", "-noappend", "-quiet"],
                  what="making the squashfs image", timeout=3600)
            tmp.replace(img)
        return img

    def peer(self) -> dict:
        img = self.squashfs_image()
        self.sqmnt.mkdir(parents=True)
        harness.run(["squashfuse", img, self.sqmnt], what="squashfuse", timeout=60)
        try:
            pid = int(subprocess.run(["pgrep", "-n", "-f", f"squashfuse .*{self.sqmnt}"],
                                     capture_output=True, text=True).stdout.split()[0])
            samples = []
            for _ in range(self.args.runs):
                # On the host: a FUSE mount is nodev, so the tree's own /dev/null is no use.
                harness.run(["bash", "-c", "set -o pipefail; tar -cf - -C \"$1\" . | cat > /dev/null",
                       "read-all", self.sqmnt], what="read-all", timeout=1800, group=True)
                samples.append(status(pid))
            return {"read_all": samples}
        finally:
            subprocess.run(["fusermount3", "-u", str(self.sqmnt)])

    def run(self) -> dict:
        self.u.mkdir(parents=True)
        harness.log("memory setup: ware pack of the tree into a fresh store (untimed)")
        ran = self.ware("pack", "--devices", "keep", self.ctx.tree, what="packing",
                        timeout=3600)
        self.ware_id = harness.parse_ware_id(ran)
        small = self.formula("small", SMALL_JOB)
        read_all = self.formula("read-all", READ_ALL)
        n = self.args.memory_runs
        samples, pid, t0 = [], None, time.monotonic()
        try:
            for i in range(1, n + 1):
                self.ware("-q", "run", small, what=f"small job, run {i}")
                if pid is None:
                    pid = self.daemon_pid()
                if i in SAMPLES or i == n:
                    samples.append({"runs": i, **status(pid)})
                    harness.log(f"memory: after {i} runs: VmRSS "
                          f"{samples[-1]['VmRSS'] / MIB:.1f} MiB")
            small_s = time.monotonic() - t0
            reads = []
            for i in range(self.args.runs):
                self.ware("-q", "run", read_all, what=f"read-all job, run {i + 1}",
                          timeout=1800)
                reads.append(status(pid))
                harness.log(f"memory: after read-all {i + 1}: VmRSS "
                      f"{reads[-1]['VmRSS'] / MIB:.1f} MiB")
            if self.daemon_pid() != pid:
                raise harness.BenchError("the daemon restarted during the runs")
            peak = status(pid)["VmHWM"]
        finally:
            try:
                self.ware("daemon", "stop", what="ware daemon stop")
            except harness.BenchError as e:
                harness.warn(f"cleanup: {e}")
        return {"small_runs": n, "small_seconds": small_s, "small": samples,
                "read_all": reads, "peak": peak, "bound_mib": BOUND_MIB,
                "squashfuse": self.peer()}


def bench_memory(args, ctx, work: Path) -> dict:
    return MemBench(args, ctx, work).run()


def render_memory(doc: dict | None, where: str | None, charts: dict | None = None) -> list[str]:
    lines = ["## Memory: one daemon over many runs", ""]
    if not doc:
        return lines + ["No results yet: `sudo benchmarks/run --only memory`.", ""]
    r = doc["results"]
    lines += [render.header(doc, where), "",
              f"One store daemon serves every run: {r['small_runs']:,} runs of "
              f"`{SMALL_JOB}` (each a fresh lazy mount of the tree, namespaces, scratch overlay "
              f"and run record; {r['small_seconds']:.0f} s in all), then {len(r['read_all'])} "
              f"runs of `{READ_ALL}` (every file of the tree read, filling the caches). "
              "Resident memory of the daemon from /proc/PID/status.", "",
              "| after | VmRSS MiB | RssAnon MiB |", "|---|---:|---:|"]
    for s in r["small"]:
        what = f"{s['runs']:,} small runs"
        lines.append(f"| {what} | {s['VmRSS'] / MIB:.1f} | {s['RssAnon'] / MIB:.1f} |")
    for i, s in enumerate(r["read_all"]):
        lines.append(f"| + read-all run {i + 1} | {s['VmRSS'] / MIB:.1f} | "
                     f"{s['RssAnon'] / MIB:.1f} |")
    sq = r.get("squashfuse", {}).get("read_all", [])
    if sq:
        lines.append(f"| squashfuse after the same read-all runs (peer) | "
                     f"{sq[-1]['VmRSS'] / MIB:.1f} | {sq[-1]['RssAnon'] / MIB:.1f} |")
    first = r["small"][0]
    last = r["small"][-1]
    met = r["peak"] <= r["bound_mib"] * MIB
    lines += ["", f"Peak (VmHWM) {r['peak'] / MIB:.1f} MiB against the documented bound of "
              f"{r['bound_mib']} MiB: **{'met' if met else 'NOT met'}**. Growth over the small "
              f"runs, run {first['runs']} to run {last['runs']:,}: "
              f"{(last['VmRSS'] - first['VmRSS']) / MIB:+.1f} MiB.", ""]
    return lines
