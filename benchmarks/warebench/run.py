"""The `run` group: `ware run` (issue 5) against unpack-then-run and friends.

A job on the benchmark tree, from invoking the command to the job's end, for:

- `ware run` with each executor (`ns`, the default; `chroot`; `runc`), the tree packed into the
  store once (untimed), cold (page cache dropped, the store's daemon stopped) and warm (the
  daemon kept running, the store and the tree's pages cached: a job runner's common case);
- `tar -xf TREE.tar -C DIR` into a fresh directory, then `chroot DIR JOB`;
- `squashfuse IMG MNT` (image: `mksquashfs TREE IMG -comp zstd`), then `chroot MNT JOB`;
- `runc run` on an OCI bundle whose rootfs is an already-unpacked copy of the tree (runc's own
  start cost), and `tar -x` into a fresh bundle rootfs then `runc run` (unpack + runc).

Jobs: `/bin/true`; `/usr/bin/date +%s%N` (its output, the wall clock when the job ran, minus
the wall clock just before the harness spawned the first command gives the time to the job's
start); `python3 -c 'import json'`; `python3 -c 'import numpy'` (the two Python jobs only when
the tree has python3 / numpy: the small tree has neither).

The entry point calls bench_run, then report calls render_run / chart_run; running commands,
dropping caches and rounds come from harness, tables and chart styling from render.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from pathlib import Path

from . import harness, render

BEGIN, END = "<!-- run:begin -->", "<!-- run:end -->"
TOOLS = ["ware-ns", "ware-chroot", "ware-runc", "tar+chroot", "squashfuse+chroot", "runc",
         "tar+runc"]
WARE_TOOLS = {"ware-ns": "ns", "ware-chroot": "chroot", "ware-runc": "runc"}
LABEL = {"ware-ns": "ware run (ns)", "ware-chroot": "ware run --executor chroot",
         "ware-runc": "ware run --executor runc", "tar+chroot": "tar -x + chroot",
         "squashfuse+chroot": "squashfuse + chroot", "runc": "runc run (rootfs unpacked before)",
         "tar+runc": "tar -x + runc run"}
SHORT = {"ware-ns": "ware ns", "ware-chroot": "ware chroot", "ware-runc": "ware runc",
         "tar+chroot": "tar+chroot", "squashfuse+chroot": "squashfuse\n+chroot",
         "runc": "runc\n(prepared)", "tar+runc": "tar+runc"}
JOBS = {"true": ["/bin/true"],
        "start": ["/usr/bin/date", "+%s%N"],
        "json": ["/usr/bin/python3", "-c", "import json"],
        "numpy": ["/usr/bin/python3", "-c", "import numpy"]}
JOB_LABEL = {"true": "/bin/true", "start": "time to the job's start (date +%s%N)",
             "json": "python3 -c 'import json'", "numpy": "python3 -c 'import numpy'"}
TIMEOUT = 600
TARGET_TRUE_S = 0.100  # `ware run` to /bin/true
TARGET_X = 20.0        # at least 20x faster than unpack-then-run

TIMING = (
    "wall clock (time.monotonic) from just before spawning the first command of a way (ware "
    "run; tar -x; squashfuse; runc run) to the end of the job (for ware run: the end of the "
    "command, so its mount, namespace set-up, teardown, output packing and run record are "
    "inside; for the peers the unmount/rm -rf after the job is outside, recorded as "
    "cleanup_s). Time to the job's start: the job's `date +%s%N` minus time.time_ns() taken "
    "just before spawning. cold: page cache dropped, the store's daemon stopped, squashfuse "
    "unmounted, a fresh directory for tar -x, before every run; warm: nothing dropped, the "
    "daemon kept running, one untimed run of each way and job first")


def doc_fields(args) -> dict:
    return {"cache": "warm only (--warm)" if args.warm else "cold and warm",
            "timing": TIMING}


def load() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def cache_dir() -> Path:
    base = os.environ.get("WARE_BUILD_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "warefs-build")
    return Path(base) / "run-bench"


class RunBench:
    def __init__(self, args, ctx, work: Path):
        self.args, self.ctx = args, ctx
        self.u = work / "run"
        self.store = self.u / "store"
        self.dest = self.u / "dest"            # tar -x target (tar+chroot)
        self.bdest = self.u / "bundle-rootfs"  # tar -x target (tar+runc)
        self.rootfs = self.u / "rootfs"        # the prepared runc bundle's rootfs
        self.sqmnt = self.u / "mnt-squashfs"
        self.n = 0
        self.ware_id = None
        self.containers = []

    def cached_image(self, kind: str, make) -> tuple[Path, bool]:
        """A .tar / .sqfs of the tree made once and kept outside the repo, keyed by the tree's
        path and summary (entries, bytes): remade when the tree changes."""
        d = cache_dir()
        d.mkdir(parents=True, exist_ok=True)
        tree = self.ctx.tree
        key = json.dumps({"tree": str(tree), "summary": self.summary}, sort_keys=True)
        img = d / f"{tree.name}.{kind}"
        stamp = d / f"{tree.name}.{kind}.key"
        if img.exists() and stamp.exists() and stamp.read_text() == key:
            return img, True
        tmp = img.with_name(img.name + ".tmp")
        harness.rm_rf(tmp)
        make(tmp)
        tmp.replace(img)
        stamp.write_text(key)
        return img, False

    def prepare(self, summary: dict) -> dict:
        self.summary = summary
        self.u.mkdir(parents=True)
        self.sqmnt.mkdir()
        tree = self.ctx.tree
        t0 = time.monotonic()
        harness.log("run setup: ware pack --devices keep of the tree into a fresh store (untimed)")
        ran = harness.run([self.ctx.ware, "--store", self.store, "pack", "--devices", "keep", tree],
                    what="packing the ware to run on")
        self.ware_id = harness.parse_ware_id(ran)
        pack_s = time.monotonic() - t0
        harness.log("run setup: the .tar and squashfs image of the tree (cached in "
              f"{cache_dir()}; made once)")
        self.tar, tar_hit = self.cached_image("tar", lambda p: harness.run(
            ["tar", "-cf", p, "-C", tree, "."], what="making the tar"))
        self.img, sq_hit = self.cached_image("sqfs", lambda p: harness.run(
            ["mksquashfs", tree, p, "-comp", "zstd", "-noappend", "-quiet", "-no-progress"],
            what="making the squashfs image"))
        harness.log("run setup: the runc bundles (rootfs: tar -x of the tree, untimed)")
        self.rootfs.mkdir()
        harness.run(["tar", "-xf", self.tar, "-C", self.rootfs], what="unpacking the runc rootfs")
        self.jobs = {j: argv for j, argv in JOBS.items() if self.has(argv, j)}
        skipped = [j for j in JOBS if j not in self.jobs]
        if skipped:
            harness.warn(f"the tree lacks what jobs {skipped} need (python3/numpy): skipped")
        self.formulas, self.bundles, self.tbundles = {}, {}, {}
        for j, argv in self.jobs.items():
            f = self.u / f"formula-{j}.json"
            f.write_text(json.dumps({"inputs": {"/": self.ware_id},
                                     "action": {"argv": argv}}, indent=1))
            self.formulas[j] = f
            self.bundles[j] = self.bundle(f"bundle-{j}", argv, self.rootfs)
            self.tbundles[j] = self.bundle(f"tbundle-{j}", argv, self.bdest)
        return {"ware_id": self.ware_id, "ware_pack_s": pack_s,
                "ware_stored_bytes": harness.du_bytes(self.store),
                "tar": str(self.tar), "tar_bytes": self.tar.stat().st_size,
                "tar_cached": tar_hit, "squashfs": str(self.img),
                "squashfs_bytes": self.img.stat().st_size, "squashfs_cached": sq_hit,
                "mksquashfs_command": "mksquashfs TREE IMG -comp zstd -noappend",
                "jobs": {j: a for j, a in self.jobs.items()}, "jobs_skipped": skipped,
                "formula_example": json.loads(self.formulas["true"].read_text()),
                "runc_config": "runc spec, then process.args = the job, terminal false, "
                               "root {path: the rootfs, readonly: true}"}

    def has(self, argv, job) -> bool:
        p = self.ctx.tree / argv[0].lstrip("/")
        if not os.path.lexists(p):
            return False
        if job == "numpy":
            return any((self.ctx.tree / d).is_dir() for d in (
                "usr/lib/python3/dist-packages/numpy", "usr/local/lib/python3/dist-packages/numpy"))
        return True

    def bundle(self, name: str, argv, rootfs: Path) -> Path:
        b = self.u / name
        b.mkdir()
        harness.run(["runc", "spec", "--bundle", b], what="runc spec")
        cfg = json.loads((b / "config.json").read_text())
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = list(argv)
        cfg["root"] = {"path": str(rootfs), "readonly": True}
        (b / "config.json").write_text(json.dumps(cfg, indent=1))
        return b

    # --- state -------------------------------------------------------------------------------
    def ware(self, *a, what=None) -> object:
        return harness.run([self.ctx.ware, "--store", self.store, *a], what=what, timeout=120)

    def daemon_pid(self):
        try:
            st = json.loads(self.ware("--json", "daemon", "status",
                                      what="ware daemon status").stdout)
        except Exception as e:  # noqa: BLE001 (recorded, never fatal)
            harness.warn(f"cannot read the daemon's pid: {e}")
            return None
        return st.get("daemon", {}).get("pid") if st.get("running") else None

    def sq_umount(self) -> None:
        if str(self.sqmnt) in harness.mountpoints():
            try:
                harness.run(["fusermount3", "-u", self.sqmnt], what="unmounting squashfuse",
                      timeout=60)
            except harness.BenchError as e:
                harness.warn(f"{e}; detaching lazily")
                subprocess.run(["umount", "-l", str(self.sqmnt)])

    def close(self) -> None:
        if self.ware_id:
            try:
                self.ware("daemon", "stop", what="ware daemon stop")
            except harness.BenchError as e:
                harness.warn(f"cleanup: {e}")
        self.sq_umount()
        for c in self.containers:
            subprocess.run(["runc", "delete", "--force", c], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        harness.detach_mounts_below(self.u)

    # --- one run -----------------------------------------------------------------------------
    def once(self, mode: str, tool: str, job: str, what: str) -> dict:
        """One timed run. Cold: every cache dropped first. Returns the measures."""
        argv = self.jobs[job]
        steps, cleanup = [], []
        if tool in WARE_TOOLS:
            rec = self.u / "record.json"
            if rec.exists():
                rec.unlink()
            steps = [("job", [self.ctx.ware, "--store", self.store, "run", "--executor",
                              WARE_TOOLS[tool], "--record", rec, self.formulas[job]])]
            if mode == "cold":
                self.ware("daemon", "stop", what="ware daemon stop")
        elif tool in ("tar+chroot", "tar+runc"):
            dest = self.dest if tool == "tar+chroot" else self.bdest
            harness.rm_rf(dest)
            dest.mkdir()
            steps = [("ready", ["tar", "-xf", self.tar, "-C", dest])]
            if tool == "tar+chroot":
                steps.append(("job", ["chroot", dest, *argv]))
            else:
                steps.append(("job", self.runc_argv(self.tbundles[job])))
            cleanup = [lambda d=dest: harness.rm_rf(d)]
        elif tool == "squashfuse+chroot":
            self.sq_umount()
            steps = [("ready", ["squashfuse", self.img, self.sqmnt]),
                     ("job", ["chroot", self.sqmnt, *argv])]
            cleanup = [self.sq_umount]
        elif tool == "runc":
            steps = [("job", self.runc_argv(self.bundles[job]))]
        pid_before = self.daemon_pid() if tool in WARE_TOOLS and mode == "warm" else None
        if mode == "cold":
            harness.drop_caches()
        else:  # no dirty pages of an earlier run (rm -rf, tar -x) written back in this one
            os.sync()
        m = {"ready_s": 0.0}
        launch_ns = time.time_ns()
        t0 = time.monotonic()
        for kind, cmd in steps:
            ran = harness.run(cmd, what=what, timeout=TIMEOUT)
            m[f"{kind}_s"] = m.get(f"{kind}_s", 0.0) + ran.seconds
        m["seconds"] = time.monotonic() - t0
        if job == "start":
            lines = [ln.strip() for ln in ran.stdout.splitlines() if ln.strip()]
            try:
                m["start_s"] = (int(lines[-1]) - launch_ns) / 1e9
            except (IndexError, ValueError):
                raise harness.BenchError(f"{what}: the job printed no date +%s%N "
                                   f"(stdout {ran.stdout[-200:]!r})") from None
        if tool in WARE_TOOLS:
            m.update(self.record_times(rec, launch_ns, m["seconds"]))
            if mode == "warm":
                pid_after = self.daemon_pid()
                m["daemon_pid"] = pid_after
                m["daemon_kept"] = bool(pid_before) and pid_before == pid_after
        t1 = time.monotonic()
        for c in cleanup:
            c()
        m["cleanup_s"] = time.monotonic() - t1
        m["command"] = " && ".join(harness.fmt_cmd(c) for _, c in steps).replace(str(self.u), "$WORK")
        return m

    def runc_argv(self, bundle: Path) -> list:
        self.n += 1
        cid = f"warefs-bench-{os.getpid()}-{self.n}"
        self.containers.append(cid)
        return ["runc", "run", "--bundle", bundle, cid]

    @staticmethod
    def record_times(rec: Path, launch_ns: int, total: float) -> dict:
        """ware's own split, from its run record (RFC 3339, milliseconds): launch → started
        (mount, namespaces), started → ended (the job), ended → exit (teardown, packing)."""
        try:
            r = json.loads(rec.read_text())
        except (OSError, json.JSONDecodeError) as e:
            return {"record_error": str(e)}
        import datetime as dt

        def ns(s):
            return int(dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1e9)
        try:
            st, en = ns(r["started"]), ns(r["ended"])
        except (KeyError, ValueError) as e:
            return {"record_error": f"{type(e).__name__}: {e}"}
        return {"rec_setup_s": (st - launch_ns) / 1e9, "rec_job_s": (en - st) / 1e9,
                "rec_after_s": total - (en - launch_ns) / 1e9, "status": r.get("status"),
                "exit_code": r.get("exit_code"), "notices": r.get("notices", [])}


def bench_run(args, ctx, work: Path) -> dict:
    source = harness.tree_summary(ctx.tree)
    rb = RunBench(args, ctx, work)
    modes = ["warm"] if args.warm else ["cold", "warm"]
    try:
        setup = rb.prepare(source)
        jobs = list(rb.jobs)
        res = {"_setup": setup, "load_before": load()}
        acc = {mode: {j: {t: {"runs": []} for t in TOOLS} for j in jobs} for mode in modes}
        for mode in modes:
            if mode == "warm":
                harness.log("run: warm-up (one untimed run of each way and job; the daemon is "
                      "started by the first ware run and kept)")
                for j in jobs:
                    for t in TOOLS:
                        rb.once("warm", t, j, f"warm-up {t} {j}")
            for r, order in harness.rounds(TOOLS, args.runs):
                for j in jobs:
                    for t in order:
                        m = rb.once(mode, t, j, f"{mode} {t} {j}, run {r + 1}")
                        m["load"] = load()
                        acc[mode][j][t]["command"] = m.pop("command")
                        acc[mode][j][t]["runs"].append(m)
                        extra = (f"  start {m['start_s'] * 1e3:8.1f} ms" if "start_s" in m
                                 else "")
                        harness.log(f"{mode} {r + 1}/{args.runs} {j:5} {t:17} "
                              f"{m['seconds'] * 1e3:9.1f} ms{extra}")
        for mode in modes:
            for j in jobs:
                for t in TOOLS:
                    v = acc[mode][j][t]
                    v.update(harness.summarize(v["runs"]))
                    for k in ("ready_s", "job_s", "start_s", "rec_setup_s", "rec_job_s",
                              "rec_after_s", "cleanup_s"):
                        xs = [x[k] for x in v["runs"] if x.get(k) is not None]
                        if xs:
                            v[k[:-2] + "_median_s"] = statistics.median(xs)
                            if k == "start_s":
                                v["start_min_s"], v["start_max_s"] = min(xs), max(xs)
                    if t in WARE_TOOLS and mode == "warm":
                        v["daemon_kept_all"] = all(x.get("daemon_kept") for x in v["runs"])
                    notes = sorted({n for x in v["runs"] for n in x.get("notices", [])})
                    if notes:
                        v["notices"] = notes
        res.update(acc)
        res["load_after"] = load()
        return res
    finally:
        rb.close()


def ms(s) -> str:
    if s is None:
        return "n/a"
    return f"{s * 1e3:,.0f}" if s >= 1 else f"{s * 1e3:,.1f}"


def med(v: dict, k: str):
    """Median of measure k over the runs (None when no run has it)."""
    xs = [x[k] for x in (v or {}).get("runs", []) if x.get(k) is not None]
    return statistics.median(xs) if xs else None


def figure(v: dict, job: str) -> tuple[float, float, float] | None:
    """The figure compared for a job: time to the job's start for `start`, else the total."""
    if not v or not v.get("runs"):
        return None
    if job == "start":
        if "start_median_s" not in v:
            return None
        return v["start_median_s"], v["start_min_s"], v["start_max_s"]
    return v["median_s"], v["min_s"], v["max_s"]


def tar_anomaly(res: dict) -> str | None:
    """A warm `tar -x` much slower than a cold one is the machine, not tar: say so."""
    c = med(res.get("cold", {}).get("true", {}).get("tar+chroot"), "ready_s")
    w = med(res.get("warm", {}).get("true", {}).get("tar+chroot"), "ready_s")
    if c and w and w > 3 * c:
        return (f"⚠ In this run the warm `tar -x` took {ms(w)} ms against {ms(c)} ms cold: "
                "a warm extract cannot be slower than a cold one on an idle machine, so the "
                "warm tar rows (and every warm ratio against them) reflect something else on "
                "the machine (other jobs' I/O, writeback) and are not trustworthy; the "
                "20x target is judged on the cold rows.")
    return None


def targets(res: dict) -> list[str]:
    out = []
    goal = f"`ware run` to `/bin/true` under {TARGET_TRUE_S * 1e3:.0f} ms"
    parts, ok_all = [], True
    for mode in ("cold", "warm"):
        v = res.get(mode, {}).get("true", {}).get("ware-ns")
        if not v:
            continue
        ok = v["median_s"] < TARGET_TRUE_S
        ok_all &= ok
        txt = (f"{mode}: {ms(v['median_s'])} ms median (min {ms(v['min_s'])}, max "
               f"{ms(v['max_s'])}) — **{'met' if ok else 'NOT met'}**")
        if med(v, "rec_after_s") is not None:
            txt += (f" ({ms(med(v, 'rec_after_s'))} ms of it after the job ended, per the "
                    "run record)")
        parts.append(txt)
    out.append(f"- {goal}: " + ("; ".join(parts) if parts else "not measured") + ".")
    goal = (f"`ware run` at least {TARGET_X:.0f}x faster than unpack-then-run (`tar -x` + "
            "`chroot`) on the same image")
    parts = []
    for mode in ("cold", "warm"):
        for j, js in res.get(mode, {}).items():
            w, p = figure(js.get("ware-ns"), j), figure(js.get("tar+chroot"), j)
            if not w or not p:
                continue
            x = p[0] / w[0]
            if mode == "warm" and tar_anomaly(res):
                parts.append(f"warm {j}: {x:.1f}x (not judged: warm tar -x anomalous)")
                continue
            parts.append(f"{mode} {JOB_LABEL[j] if j != 'start' else 'job start'}: "
                         f"{x:.1f}x ({ms(p[0])} vs {ms(w[0])} ms) — "
                         f"**{'met' if x >= TARGET_X else 'NOT met'}**")
    out.append(f"- {goal}: " + ("; ".join(parts) if parts else "not measured") + ".")
    return out


def render_run(doc: dict | None, where: str | None, charts: dict | None = None) -> list[str]:
    out = ["## Run: `ware run` against unpack-then-run", ""]
    if doc is None:
        return out + ["No run results yet.", ""]
    res, setup = doc["results"], doc["results"]["_setup"]
    out += [render.header(doc, where), "",
            f"Load average (1/5/15 min) before: {res.get('load_before')}, after: "
            f"{res.get('load_after')} — the machine is shared, so every figure carries that "
            "noise; each run's load is in the JSON.", "",
            f"The tree is packed once into a fresh store (`ware pack --devices keep`, "
            f"{setup['ware_pack_s']:.1f} s, untimed); the `.tar` "
            f"({render.mb(setup['tar_bytes'])} MB) and the squashfs image "
            f"(`mksquashfs … -comp zstd`, {render.mb(setup['squashfs_bytes'])} MB) are made once "
            "and cached outside the repo; the prepared runc bundle's rootfs is a `tar -x` of "
            "the tree made before the rounds. The formula is "
            f"`{json.dumps(setup['formula_example'])}` with the job's argv "
            "(no outputs, no network). Ways:", ""]
    for t in TOOLS:
        for mode in ("cold", "warm"):
            for j in res.get(mode, {}):
                cmd = res[mode][j][t].get("command")
                if cmd:
                    break
            else:
                continue
            break
        out.append(f"- {LABEL[t]}: `{render.md_cell(cmd)}`")
    out += ["",
            "Each figure: wall clock from just before the first command is spawned to the end "
            "of the job (for `ware run`, to the end of the command: mount, namespaces, the "
            "job, teardown and the run record are all inside; for the peers the unmount / "
            "`rm -rf` after the job is not). \"job start\" = the job's `date +%s%N` minus the "
            "harness's clock just before spawning (includes exec of `date` and loading libc "
            "from the root). cold = page cache dropped, ware daemon stopped, fresh mount / "
            "directory before every run; warm = nothing dropped, the daemon kept running "
            "(checked: same pid before and after each run), after one untimed run of each. "
            "Times in ms: median (min–max). \"x\" = that way's time divided by `ware run`'s "
            "(ns) in the same column: above 1 means `ware run` is faster.", ""]
    for mode in ("cold", "warm"):
        if mode not in res:
            continue
        jobs = list(res[mode])
        out += [f"### {mode.capitalize()} ({doc['runs']} runs)", "",
                "| way | " + " | ".join(
                    ("job start" if j == "start" else JOB_LABEL[j]) + " ms | x" for j in jobs)
                + " |",
                "|---|" + "---:|---:|" * len(jobs)]
        for t in TOOLS:
            row = [LABEL[t]]
            for j in jobs:
                f = figure(res[mode][j].get(t), j)
                w = figure(res[mode][j].get("ware-ns"), j)
                if not f:
                    row += ["n/a", ""]
                    continue
                row += [f"{ms(f[0])} ({ms(f[1])}–{ms(f[2])})",
                        f"{f[0] / w[0]:.2f}" if w and w[0] > 0 else "n/a"]
            out.append("| " + " | ".join(row) + " |")
        out.append("")
        # ware's own split and the peers' phases, for the /bin/true job
        split = []
        for t in WARE_TOOLS:
            v = res[mode].get("true", {}).get(t, {})
            if med(v, "rec_setup_s") is not None:
                split.append(f"{LABEL[t]} {ms(med(v, 'rec_setup_s'))} set-up + "
                             f"{ms(med(v, 'rec_job_s'))} job + "
                             f"{ms(med(v, 'rec_after_s'))} after")
        if split:
            out += ["`/bin/true`, ware's split from its run record (ms precision: launch → "
                    "`started` → `ended` → exit): " + "; ".join(split) + ".", ""]
        ph = []
        for t in ("tar+chroot", "squashfuse+chroot", "tar+runc"):
            v = res[mode].get("true", {}).get(t, {})
            if med(v, "ready_s") is not None:
                ph.append(f"{LABEL[t]}: ready {ms(med(v, 'ready_s'))} + job "
                          f"{ms(med(v, 'job_s'))} (cleanup after, untimed: "
                          f"{ms(med(v, 'cleanup_s'))})")
        if ph:
            out += ["`/bin/true`, the peers' phases (ms): " + "; ".join(ph) + ".", ""]
        if mode == "warm":
            bad = [t for t in WARE_TOOLS for j in jobs
                   if not res[mode][j].get(t, {}).get("daemon_kept_all", True)]
            if bad:
                out += [f"⚠ the daemon did not stay up across every warm run of: "
                        f"{sorted(set(bad))}.", ""]
    if tar_anomaly(res):
        out += [tar_anomaly(res), ""]
    notes = sorted({n for mode in ("cold", "warm") for js in res.get(mode, {}).values()
                    for v in js.values() for n in v.get("notices", [])})
    if notes:
        out += ["Run-record notices: " + "; ".join(f"`{n}`" for n in notes) + ".", ""]
    out += render.img(charts, "run-startup.png",
                 "ware run against unpack-then-run, squashfuse and runc, cold and warm")
    out += ["Targets (issue 5):", "", *targets(res), ""]
    return out


def chart_run(plt, doc, where, out: Path) -> list[str]:
    res = doc["results"]
    modes = [m for m in ("cold", "warm") if m in res]
    colors = {"ware-ns": render.WARE_C, "ware-chroot": "#4a98c9", "ware-runc": render.WARE_C2,
              "tar+chroot": render.PEER_C, "squashfuse+chroot": render.SQ_C, "runc": "#2ca02c",
              "tar+runc": "#98df8a"}
    fig, axes = plt.subplots(len(modes), 1, figsize=(13, 5.2 * len(modes)), squeeze=False)
    for ax, mode in zip(axes[:, 0], modes):
        jobs = list(res[mode])
        width = 0.8 / len(TOOLS)
        for i, t in enumerate(TOOLS):
            xs, med, lo, hi = [], [], [], []
            for k, j in enumerate(jobs):
                f = figure(res[mode][j].get(t), j)
                if not f:
                    continue
                xs.append(k - 0.4 + width * (i + 0.5))
                med.append(f[0] * 1e3)
                lo.append((f[0] - f[1]) * 1e3)
                hi.append((f[2] - f[0]) * 1e3)
            ax.bar(xs, med, width=width * 0.95, color=colors[t], edgecolor="#333333",
                   linewidth=0.5, yerr=[lo, hi], capsize=2, label=LABEL[t],
                   error_kw={"elinewidth": 0.8, "ecolor": "#222222"})
            for x, v, h in zip(xs, med, hi):
                ax.annotate(f"{v:,.0f}" if v >= 10 else f"{v:.1f}", (x, v + h), xytext=(0, 2),
                            textcoords="offset points", ha="center", va="bottom",
                            fontsize=6.5, rotation=90)
        ax.set_yscale("log")
        ax.set_xticks(range(len(jobs)), [("job start\n(date +%s%N)" if j == "start" else
                                          JOB_LABEL[j] + "\n(to the end of the job)")
                                         for j in jobs], fontsize=9)
        ax.set_ylabel("ms (log scale)")
        ax.set_title(f"{mode}", fontsize=10, loc="left")
        render.style(ax)
        ax.grid(axis="y", which="both", alpha=0.2)
        top = max(p.get_height() for p in ax.patches)
        ax.set_ylim(top=top * 8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8.5, ncol=4, loc="upper center",
               bbox_to_anchor=(0.5, 0.925), frameon=False)
    fig.suptitle("ware run vs tar -x + chroot, squashfuse + chroot, runc — median ms "
                 f"(min–max whiskers)\n{render.subtitle(doc, 'cold and warm')}; load "
                 f"{doc['results'].get('load_before')}", fontsize=11)
    fig.subplots_adjust(bottom=0.1, top=0.86, hspace=0.3, left=0.07, right=0.98)
    render.footer(fig, doc, where)
    render.save(plt, fig, out / "run-startup.png")
    return ["run-startup.png"]
