"""The `mount` group: startup (a lazy `ware mount` and a first job against `ware unpack`,
`tar -x`, squashfuse and squashfuse_ll), then a metadata walk and a read of every byte, cold and
warm, on the ware mount against squashfuse and the native directory; its section and charts.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time

from pathlib import Path

from .harness import (
    BenchError,
    Ctx,
    MOUNT_TIMEOUT,
    Ran,
    drop_caches,
    detach_mounts_below,
    du_bytes,
    fmt_cmd,
    log,
    mountpoints,
    parse_ware_id,
    proc_read_bytes,
    rm_rf,
    rounds,
    run,
    summarize,
    warn,
)
from .render import (
    NATIVE_C,
    PEER_C,
    SQ_C,
    SQ_C2,
    WARE_C,
    WARE_C2,
    bars,
    compare,
    footer,
    header,
    img,
    mb,
    mb_or,
    save,
    spread,
    style,
    subtitle,
    x_vs,
)

MBEGIN, MEND = "<!-- mount:begin -->", "<!-- mount:end -->"


STARTUP_TOOLS = ["warefs-mount", "warefs-unpack", "tar", "squashfuse", "squashfuse_ll"]
ACCESS_TOOLS = ["warefs", "squashfuse", "squashfuse_ll", "native"]
SQUASH = ("squashfuse", "squashfuse_ll")  # the high-level and the low-level FUSE API builds
# The first real job. Its output goes to the harness (counted, then dropped) rather than to
# the tree's own /dev/null: FUSE mounts (warefs and squashfuse alike) are nodev, so a
# redirection to /dev/null inside the chroot fails with EACCES there.
JOB = "ls /usr/bin; /usr/bin/dpkg -l"
WALK = ["find", "{mnt}", "-printf", "%s %m %u\\n"]
READ_ALL = "set -o pipefail; tar -cf - -C \"$1\" . | cat > /dev/null"


class MountBench:
    """The scratch state of the mount group, and every mount and daemon it starts, so that
    close() can take them all down again (it is called from a finally)."""

    def __init__(self, args, ctx: Ctx, work: Path):
        self.args, self.ctx = args, ctx
        self.u = work / "mount"
        self.store = self.u / "store"
        self.tar = self.u / "tree.tar"
        self.img = self.u / "tree.sqfs"
        self.dest = self.u / "dest"
        self.mnt = {"warefs": self.u / "mnt-warefs", "squashfuse": self.u / "mnt-squashfs",
                    "squashfuse_ll": self.u / "mnt-squashfs-ll"}
        self.ware_id = None

    # --- setup (untimed) ---------------------------------------------------------------------
    def prepare(self) -> dict:
        self.u.mkdir(parents=True)
        for m in self.mnt.values():
            m.mkdir()
        log("mount setup: ware pack --devices keep of the tree (untimed)")
        ran = run([self.ctx.ware, "--store", self.store, "pack", "--devices", "keep",
                   self.ctx.tree], what="packing the ware to mount")
        self.ware_id = parse_ware_id(ran)
        log("mount setup: tar -cf of the tree (untimed)")
        run(["tar", "-cf", self.tar, "-C", self.ctx.tree, "."], what="making the tar")
        log("mount setup: mksquashfs -comp zstd of the tree (untimed; takes a minute or two)")
        t0 = time.monotonic()
        run(["mksquashfs", self.ctx.tree, self.img, "-comp", "zstd", "-noappend", "-quiet",
             "-no-progress"], what="making the squashfs image")
        mk_s = time.monotonic() - t0
        return {"ware_id": self.ware_id, "ware_stored_bytes": du_bytes(self.store),
                "tar_bytes": self.tar.stat().st_size, "squashfs_bytes": self.img.stat().st_size,
                "mksquashfs_s": mk_s,
                "mksquashfs_command": fmt_cmd(["mksquashfs", "TREE", "$WORK/tree.sqfs", "-comp",
                                               "zstd", "-noappend"])}

    # --- mounts ------------------------------------------------------------------------------
    def ware(self, *a, what=None, **kw) -> Ran:
        return run([self.ctx.ware, "--store", self.store, *a], what=what,
                   timeout=MOUNT_TIMEOUT, **kw)

    def daemon_pid(self) -> int | None:
        try:
            r = self.ware("--json", "daemon", "status", what="ware daemon status")
            st = json.loads(r.stdout)
        except (BenchError, json.JSONDecodeError) as e:
            warn(f"cannot read the daemon's pid: {e}")
            return None
        return st.get("daemon", {}).get("pid") if st.get("running") else None

    def ware_mount_argv(self) -> list:
        return [self.ctx.ware, "--store", self.store, "mount", self.ware_id, self.mnt["warefs"]]

    def sq_argv(self, tool: str = "squashfuse") -> list:
        return [tool, self.img, self.mnt[tool]]

    def squashfuse_pid(self, tool: str = "squashfuse") -> int | None:
        want = [tool.encode(), str(self.img).encode(), str(self.mnt[tool]).encode()]
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and os.path.basename(argv[0]) == want[0] and want[1] in argv and \
                    want[2] in argv:
                return int(d)
        return None

    def sq_umount(self) -> None:
        for tool in SQUASH:
            m = self.mnt[tool]
            if str(m) not in mountpoints():
                continue
            try:
                run(["fusermount3", "-u", m], what=f"unmounting {tool}", timeout=60)
            except BenchError as e:
                warn(f"{e}; detaching lazily")
                run(["umount", "-l", m], what=f"lazy unmount of {tool}", timeout=60)

    def ware_down(self) -> None:
        """Stops the store's daemon (it unmounts everything); cold means a fresh daemon."""
        if self.ware_id is None:
            return
        if self.args.warm:  # keep the daemon; only the mount goes
            if str(self.mnt["warefs"]) in mountpoints():
                self.ware("umount", self.mnt["warefs"], what="ware umount")
            return
        self.ware("daemon", "stop", what="ware daemon stop")

    def teardown(self) -> None:
        self.ware_down()
        self.sq_umount()
        if os.path.lexists(self.dest):
            rm_rf(self.dest)

    def close(self) -> None:
        """Takes down everything this group started, whatever state a failure left."""
        errors = []
        for step in (lambda: self.ware_id and self.ware("daemon", "stop",
                                                         what="ware daemon stop"),
                     self.sq_umount):
            try:
                step()
            except BenchError as e:
                errors.append(str(e))
        # Whatever is still mounted below the scratch dir (e.g. a half-made mount).
        detach_mounts_below(self.u)
        for e in errors:
            warn(f"cleanup: {e}")

    def cold(self) -> None:
        if not self.args.warm:
            drop_caches()

    # --- startup -----------------------------------------------------------------------------
    def job(self, root: Path, what: str) -> Ran:
        return run(["chroot", root, "/bin/sh", "-c", JOB], what=what, timeout=MOUNT_TIMEOUT)

    def startup_once(self, tool: str, r: int) -> dict:
        self.teardown()
        what = f"{tool} startup, run {r + 1}"
        if tool == "warefs-mount":
            root = self.mnt["warefs"]
            step = self.ware_mount_argv()
        elif tool == "warefs-unpack":
            self.dest.mkdir()
            root = self.dest
            step = [self.ctx.ware, "--store", self.store, "unpack", self.ware_id, self.dest]
        elif tool == "tar":
            self.dest.mkdir()
            root = self.dest
            step = ["tar", "-xf", self.tar, "-C", self.dest]
        else:
            root = self.mnt[tool]
            step = self.sq_argv(tool)
        self.cold()
        t0 = time.monotonic()
        a = run(step, what=what, timeout=MOUNT_TIMEOUT)
        b = self.job(root, what + " (job)")
        total = time.monotonic() - t0
        m = {"seconds": total, "ready_s": a.seconds, "job_s": b.seconds,
             "user_s": a.user_s + b.user_s, "sys_s": a.sys_s + b.sys_s,
             "job_packages": sum(1 for ln in b.stdout.splitlines() if ln.startswith("ii "))}
        if tool == "warefs-mount":
            pid = self.daemon_pid()
            m["daemon_pid"] = pid
            m["source_read_bytes"] = proc_read_bytes(pid)
            m["source_read_how"] = "read_bytes of the ware daemon (since it started)"
        elif tool in SQUASH:
            m["source_read_bytes"] = proc_read_bytes(self.squashfuse_pid(tool))
            m["source_read_how"] = f"read_bytes of the {tool} process (since it started)"
        else:
            m["source_read_bytes"] = a.inblock * 512
            m["source_read_how"] = "ru_inblock x 512 of the unpacking command"
        m["command"] = fmt_cmd(step).replace(str(self.u), "$WORK") + " && " + \
            fmt_cmd(["chroot", root, "/bin/sh", "-c", JOB]).replace(str(self.u), "$WORK")
        self.teardown()
        return m

    # --- walk and read-all -------------------------------------------------------------------
    def access_root(self, tool: str) -> tuple[Path, callable]:
        """Mounts the tool's tree (untimed) and returns its root and a source-bytes probe."""
        if tool == "native":
            return self.ctx.tree, None
        if tool == "warefs":
            self.ware("mount", self.ware_id, self.mnt["warefs"], what="ware mount")
            pid = self.daemon_pid()
            return self.mnt["warefs"], lambda: proc_read_bytes(pid)
        run(self.sq_argv(tool), what=f"{tool} mount", timeout=MOUNT_TIMEOUT)
        pid = self.squashfuse_pid(tool)
        return self.mnt[tool], lambda: proc_read_bytes(pid)

    def access_once(self, test: str, tool: str, r: int) -> dict:
        """One cold run then one warm run of `test` on a fresh mount (or the native tree).
        Cold: the daemon is stopped, the mount made afresh, then the page cache dropped.
        Warm: the same command again right after, on the same mount."""
        self.teardown()
        root, probe = self.access_root(tool)
        if test == "walk":
            argv = [a.replace("{mnt}", str(root)) for a in WALK]
        else:
            argv = ["bash", "-c", READ_ALL, "read-all", root]
        out = {}
        modes = ["warm"] if self.args.warm else ["cold", "warm"]
        if self.args.warm:  # no cold run to warm the caches: one untimed pass does
            run(argv, what=f"{tool} {test} warm-up", devnull_out=True, timeout=MOUNT_TIMEOUT)
        for mode in modes:
            if mode == "cold":
                drop_caches()
            before = probe() if probe else None
            ran = run(argv, what=f"{tool} {test} {mode}, run {r + 1}", devnull_out=True,
                      timeout=MOUNT_TIMEOUT)
            after = probe() if probe else None
            m = {"seconds": ran.seconds, "user_s": ran.user_s, "sys_s": ran.sys_s,
                 "command": fmt_cmd(argv).replace(str(self.u), "$WORK")}
            if probe:
                m["source_read_bytes"] = (after - before) if None not in (before, after) else None
                m["source_read_how"] = f"read_bytes delta of the {tool} serving process"
            else:
                m["source_read_bytes"] = ran.inblock * 512
                m["source_read_how"] = "ru_inblock x 512 of the command"
            out[mode] = m
        self.teardown()
        return out


def bench_mount(args, ctx: Ctx, work: Path) -> dict:
    mb_ = MountBench(args, ctx, work)
    try:
        setup = mb_.prepare()
        start_mode = "warm" if args.warm else "cold"
        res = {"_setup": setup, "startup": {"cache": start_mode},
               "walk": {}, "read": {}}
        st = {t: {"runs": []} for t in STARTUP_TOOLS}
        acc = {test: {mode: {t: {"runs": []} for t in ACCESS_TOOLS}
                      for mode in (["warm"] if args.warm else ["cold", "warm"])}
               for test in ("walk", "read") if test in args.mount_tests}
        for r, order in rounds(STARTUP_TOOLS, args.runs):
            for t in order:
                m = mb_.startup_once(t, r)
                st[t]["command"] = m.pop("command")
                st[t]["runs"].append(m)
                srb = m.get("source_read_bytes")
                log(f"startup {r + 1}/{args.runs} {t:13} {m['seconds']:7.2f} s (ready "
                    f"{m['ready_s']:.2f} + job {m['job_s']:.2f})"
                    + (f"  read {srb / 1e6:.1f} MB" if srb is not None else ""))
            for test in [t for t in ("walk", "read") if t in args.mount_tests]:
                k = r % len(ACCESS_TOOLS)
                for t in ACCESS_TOOLS[k:] + ACCESS_TOOLS[:k]:
                    out = mb_.access_once(test, t, r)
                    for mode, m in out.items():
                        acc[test][mode][t]["command"] = m.pop("command")
                        acc[test][mode][t]["runs"].append(m)
                    log(f"{test:5} {r + 1}/{args.runs} {t:10} " + "  ".join(
                        f"{mode} {m['seconds']:7.2f} s" for mode, m in out.items()))
        for t in STARTUP_TOOLS:
            st[t].update(summarize(st[t]["runs"]))
            runs = st[t]["runs"]
            st[t]["ready_median_s"] = statistics.median(x["ready_s"] for x in runs)
            st[t]["job_median_s"] = statistics.median(x["job_s"] for x in runs)
            rb = [x["source_read_bytes"] for x in runs if x.get("source_read_bytes") is not None]
            st[t]["source_read_bytes"] = int(statistics.median(rb)) if rb else None
            pk = sorted({x["job_packages"] for x in runs})
            st[t]["job_packages"] = pk
        pk = {t: st[t]["job_packages"] for t in STARTUP_TOOLS}
        if len({tuple(v) for v in pk.values()}) != 1:
            warn(f"the job saw different package counts: {pk}")
        res["startup"].update(st)
        for test in acc:
            for mode, tools in acc[test].items():
                for t, v in tools.items():
                    v.update(summarize(v["runs"]))
                    rb = [x["source_read_bytes"] for x in v["runs"]
                          if x.get("source_read_bytes") is not None]
                    v["source_read_bytes"] = int(statistics.median(rb)) if rb else None
            res[test] = acc[test]
        return res
    finally:
        mb_.close()


MOUNT_TIMING = (
    "wall clock (time.monotonic). startup: from before the mount/unpack/extract command to the "
    "end of the chroot job (ready_s + job_s), page cache dropped and the ware daemon stopped "
    "before each run. walk/read: a fresh mount per run (daemon stopped first), page cache "
    "dropped after mounting, one cold run, then the same command again on the same mount (warm)")

MOUNT_LABEL = {"warefs-mount": "ware mount (lazy)", "warefs-unpack": "ware unpack",
               "tar": "tar -x", "squashfuse": "squashfuse", "squashfuse_ll": "squashfuse_ll",
               "warefs": "warefs mount",
               "native": "native directory"}


def render_mount(doc: dict | None, where: str | None, charts: dict | None = None) -> list[str]:
    out = ["## Mount: startup, walk, read-all", ""]
    if doc is None:
        return out + ["No mount results yet.", ""]
    res, setup = doc["results"], doc["results"]["_setup"]
    logical = doc["tree"]["logical_bytes"]
    out += [header(doc, where), "",
            f"Inputs, made once outside the timing: the ware (`ware pack --devices keep`, "
            f"store {mb(setup['ware_stored_bytes'])} MB), a tar ({mb(setup['tar_bytes'])} MB), "
            f"a squashfs image (`mksquashfs TREE IMG -comp zstd`, "
            f"{mb(setup['squashfs_bytes'])} MB). The job is "
            f"`chroot ROOT /bin/sh -c '{JOB}'` with its output sent to the harness (FUSE "
            "mounts are nodev, so the tree's own `/dev/null` cannot be opened in them).", ""]
    st = res["startup"]
    w = st.get("warefs-mount")
    out += [f"### Startup ({st.get('cache', 'cold')}): to a usable tree and a first job on it",
            "",
            "Ready = the mount/unpack/extract command; job = the chroot job after it; total = "
            "both. \"read MB\" = bytes the serving or unpacking process read from storage "
            "(`read_bytes` of the ware daemon or squashfuse, `ru_inblock` of `ware unpack` and "
            "`tar -x`; its own executable's pages included). \"x\" = the peer's total divided "
            "by the lazy mount's: above 1 means the warefs mount is faster.", "",
            "| how | ready s | job s | total median s | min s | max s | read MB | x vs ware mount |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for t in STARTUP_TOOLS:
        if t not in st:
            continue
        r = st[t]
        out.append(f"| {MOUNT_LABEL[t]} | {r['ready_median_s']:.2f} | {r['job_median_s']:.2f} | "
                   f"{r['median_s']:.2f} | {r['min_s']:.2f} | {r['max_s']:.2f} | "
                   f"{mb_or(r.get('source_read_bytes'))} | "
                   f"{x_vs(r['median_s'], w['median_s']) if w else 'n/a'} |")
    out.append("")
    out += img(charts, "mount-startup.png",
               "Startup time and bytes read from storage: ware mount, ware unpack, tar -x, "
               "squashfuse, squashfuse_ll")
    said = []
    if w:
        said.append(compare("Startup", "the lazy warefs mount", w["median_s"],
                            [(MOUNT_LABEL[t], st[t]["median_s"]) for t in STARTUP_TOOLS[1:]
                             if t in st]))
    titles = {"walk": ("Walk: `find ROOT -printf '%s %m %u\\n' > /dev/null`", False),
              "read": ("Read all: `tar -cf - -C ROOT . | cat > /dev/null`", True)}
    for test in ("walk", "read"):
        title, thru = titles[test]
        modes = res.get(test, {})
        if not modes:
            continue
        out += [f"### {title}", ""]
        head = "| tree |"
        rule = "|---|"
        for mode in modes:
            head += f" {mode} median s | {mode} min–max s | {mode} x vs warefs |"
            rule += "---:|---:|---:|"
            if thru:
                head += f" {mode} MB/s |"
                rule += "---:|"
        head += " cold read MB |" if "cold" in modes else ""
        rule += "---:|" if "cold" in modes else ""
        out += [head, rule]
        for t in ACCESS_TOOLS:
            row = f"| {MOUNT_LABEL[t]} |"
            for mode, tools in modes.items():
                r, wr = tools.get(t), tools.get("warefs")
                if not r:
                    row += " n/a | n/a | n/a |" + (" n/a |" if thru else "")
                    continue
                row += (f" {r['median_s']:.2f} | {r['min_s']:.2f}–{r['max_s']:.2f} | "
                        f"{x_vs(r['median_s'], wr['median_s']) if wr else 'n/a'} |")
                if thru:
                    row += f" {logical / 1e6 / r['median_s']:,.0f} |"
            if "cold" in modes:
                row += f" {mb_or(modes['cold'].get(t, {}).get('source_read_bytes'))} |"
            out.append(row)
        out.append("")
        for mode, tools in modes.items():
            if "warefs" in tools:
                said.append(compare(f"{'Walk' if test == 'walk' else 'Read all'}, {mode}",
                                    "the warefs mount", tools["warefs"]["median_s"],
                                    [(MOUNT_LABEL[t], tools[t]["median_s"])
                                     for t in ACCESS_TOOLS[1:] if t in tools]))
    out += img(charts, "mount-read.png",
               "Walk and read-all, cold and warm: warefs mount, squashfuse, squashfuse_ll, "
               "native directory")
    out += ["x vs warefs = the peer's median time divided by warefs's: below 1 means warefs is "
            "behind that peer. \"cold read MB\" = bytes the serving process (ware daemon, "
            "squashfuse) or, for the native directory, the command read from storage in the "
            "cold run.", "", "Where warefs stands:", ""] + said + [""]
    return out


def chart_mount(plt, doc, where, out: Path) -> list[str]:
    res, setup = doc["results"], doc["results"]["_setup"]
    made = []
    st = res.get("startup", {})
    tools = [t for t in STARTUP_TOOLS if t in st]
    if tools:
        colors = {"warefs-mount": WARE_C, "warefs-unpack": WARE_C2, "tar": PEER_C,
                  "squashfuse": SQ_C, "squashfuse_ll": SQ_C2}
        image = {"warefs-mount": ("ware store", setup.get("ware_stored_bytes")),
                 "warefs-unpack": ("ware store", setup.get("ware_stored_bytes")),
                 "tar": (".tar", setup.get("tar_bytes")),
                 "squashfuse": ("squashfs image", setup.get("squashfs_bytes")),
                 "squashfuse_ll": ("squashfs image", setup.get("squashfs_bytes"))}
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(14.5, 5.8))
        bars(a1, [f"{MOUNT_LABEL[t]}\nready {st[t]['ready_median_s']:.2f} s\n"
                  f"+ job {st[t]['job_median_s']:.2f} s" for t in tools],
             [(st[t]["median_s"], st[t]["min_s"], st[t]["max_s"]) for t in tools],
             [colors[t] for t in tools], "s")
        a1.set_ylabel("wall-clock time to a usable tree + first job (s)")
        a1.set_title("Time: mount/unpack/extract, then the chroot job", fontsize=10)
        have = [t for t in tools if any(r.get("source_read_bytes") is not None
                                         for r in st[t]["runs"])]
        if have:
            bars(a2, [f"{MOUNT_LABEL[t]}\nof a {mb(image[t][1])} MB\n{image[t][0]}"
                      if image[t][1] else MOUNT_LABEL[t] for t in have],
                 [spread(None if r.get("source_read_bytes") is None
                         else r["source_read_bytes"] / 1e6 for r in st[t]["runs"])
                  for t in have], [colors[t] for t in have], "MB", "{:,.1f}")
            a2.set_ylabel("read from storage during startup (MB = 10^6 bytes)")
            a2.set_title("Bytes read from storage (serving/unpacking process)", fontsize=10)
        else:
            a2.set_axis_off()
        fig.suptitle(f"Startup ({st.get('cache', 'cold')}): lazy ware mount vs ware unpack, "
                     f"tar -x, squashfuse, squashfuse_ll\n{subtitle(doc, st.get('cache', 'cold'))}",
                     fontsize=11)
        fig.subplots_adjust(bottom=0.24, top=0.82, wspace=0.25)
        footer(fig, doc, where)
        save(plt, fig, out / "mount-startup.png")
        made.append("mount-startup.png")
    tests = [t for t in ("walk", "read") if res.get(t)]
    if tests:
        colors = {"warefs": WARE_C, "squashfuse": SQ_C, "squashfuse_ll": SQ_C2,
                  "native": NATIVE_C}
        fig, axes = plt.subplots(1, len(tests), figsize=(6 * len(tests), 5.6), squeeze=False)
        names = {"walk": "Walk: find -printf (metadata of every entry)",
                 "read": "Read all: tar -cf - | cat (every byte of every file)"}
        for ax, test in zip(axes[0], tests):
            modes = list(res[test])
            width = 0.8 / len(ACCESS_TOOLS)
            top = 0.0
            for k, t in enumerate(ACCESS_TOOLS):
                xs, stats = [], []
                for i, mode in enumerate(modes):
                    r = res[test][mode].get(t)
                    if r:
                        xs.append(i + (k - (len(ACCESS_TOOLS) - 1) / 2) * width)
                        stats.append((r["median_s"], r["min_s"], r["max_s"]))
                if not xs:
                    continue
                ax.bar(xs, [s[0] for s in stats], width=width * 0.92, color=colors[t],
                       edgecolor="#333333", linewidth=0.6, label=MOUNT_LABEL[t],
                       yerr=[[s[0] - s[1] for s in stats], [s[2] - s[0] for s in stats]],
                       capsize=5, error_kw={"elinewidth": 1.1, "ecolor": "#222222"})
                for x, s in zip(xs, stats):
                    ax.annotate(f"{s[0]:.2f} s", (x, s[2]), xytext=(0, 4),
                                textcoords="offset points", ha="center", va="bottom",
                                fontsize=8.5, fontweight="bold")
                    top = max(top, s[2])
            ax.set_xticks(range(len(modes)),
                          [f"{m}\n" + ("(fresh mount,\npage cache dropped)" if m == "cold"
                                       else "(same mount, right\nafter the cold run)"
                                       if "cold" in modes else "(after an untimed\nwarm-up run)")
                           for m in modes], fontsize=9)
            ax.set_ylim(0, top * 1.18)
            ax.set_ylabel("wall-clock time (s)")
            ax.set_title(names[test], fontsize=10)
            style(ax)
        cache = " and ".join(dict.fromkeys(m for t in tests for m in res[t]))
        fig.suptitle("Walk and read-all: warefs mount vs squashfuse, squashfuse_ll and the "
                     "native directory, "
                     f"{cache}\n{subtitle(doc, cache)}", fontsize=11)
        handles, names_ = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, names_, loc="upper center", bbox_to_anchor=(0.5, 0.875), ncol=4,
                   fontsize=9, frameon=False)
        fig.subplots_adjust(bottom=0.25, top=0.76, wspace=0.22)
        footer(fig, doc, where)
        save(plt, fig, out / "mount-read.png")
        made.append("mount-read.png")
    return made
