"""The harness every group shares: running and timing commands (`run`, `timed`, with rusage),
rounds that rotate which tool goes first (`rounds`), the cold cache (`drop_caches`), the trees
(`get_tree`, `named_tree`, `tree_summary`, `check_tree`), the tools' stores (`ware_stats`,
`parse_ware_id`), medians with min and max (`summarize`), and the facts of the machine and the
tools that every result file records (`machine`, `git_info`, `versions`).

Nothing here holds state between calls: each group gets what it needs as arguments (`args`, a
`Ctx` naming the `ware` binary and the tree).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"
DOCS = REPO / "docs" / "benchmarks.md"
DISK_FACTOR = 6  # free space needed, as a multiple of the tree's logical size
SIZE_NOTE = "apparent bytes (`du -sb`) of the store/repo directory"


class BenchError(Exception):
    pass


@dataclass
class Ran:
    argv: list[str]
    seconds: float
    stdout: str
    stderr: str
    user_s: float
    sys_s: float
    max_rss_kib: int
    inblock: int = 0  # 512-byte blocks read from storage (ru_inblock), with waited-for children


def fmt_cmd(argv, env_extra=None) -> str:
    pre = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env_extra or {}).items())
    return (pre + " " if pre else "") + " ".join(shlex.quote(str(a)) for a in argv)


def run(argv, *, env_extra=None, cwd=None, what=None, devnull_out=False,
        timeout=None, group=False) -> Ran:
    """Runs argv (stdin from /dev/null, output captured), timing it with time.monotonic.

    devnull_out sends stdout to /dev/null instead of capturing it. With a timeout (seconds)
    the command is killed when it runs longer (and counts as failed). With group, the command
    runs in its own process group, killed whole (a pipeline's every stage) on timeout or error.
    Raises BenchError naming the command if it cannot start or exits non-zero."""
    argv = [str(a) for a in argv]
    env = dict(os.environ)
    env.pop("WARE_STORE", None)
    env.update(env_extra or {})
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            t0 = time.monotonic()
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL if devnull_out else out, stderr=err,
                                 env=env, cwd=cwd, start_new_session=group)
        except OSError as e:
            raise BenchError(f"cannot run `{fmt_cmd(argv, env_extra)}`: {e}") from None

        def kill():
            if group:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            p.kill()
        timer = threading.Timer(timeout, kill) if timeout else None
        if timer:
            timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        except BaseException:
            kill()
            p.wait()
            raise
        finally:
            if timer:
                timer.cancel()
        t1 = time.monotonic()
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if p.returncode != 0:
        tail = "\n".join(("    " + line) for line in stderr.strip().splitlines()[-15:])
        how = (f"was killed by signal {-p.returncode}" if p.returncode < 0
               else f"exited with status {p.returncode}")
        raise BenchError(f"{what + ': ' if what else ''}command `{fmt_cmd(argv, env_extra)}` "
                         f"{how}" + (f"; its stderr ends with:\n{tail}" if tail else
                                     " (no stderr)"))
    return Ran(argv, t1 - t0, stdout, stderr, ru.ru_utime, ru.ru_stime, ru.ru_maxrss,
               ru.ru_inblock)


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def warn(msg: str) -> None:
    print(f"[bench] WARNING: {msg}", file=sys.stderr, flush=True)


def rm_rf(path: Path) -> None:
    if os.path.lexists(path):
        run(["rm", "-rf", "--one-file-system", "--", path], what="cleaning up")


def du_bytes(path: Path) -> int:
    r = run(["du", "-sb", path], what="measuring stored size")
    return int(r.stdout.split()[0])


def drop_caches() -> None:
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError as e:
        raise BenchError(f"cannot drop the page cache (/proc/sys/vm/drop_caches: {e}); "
                         "run as root, or pass --warm for warm-cache figures") from None


def tree_summary(root: Path) -> dict:
    """Entry counts by kind and logical size (bytes of regular files, each inode once)."""
    kinds = {"file": 0, "dir": 0, "symlink": 0, "other": 0}
    logical, hardlinks, seen = 0, 0, set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            mode = st.st_mode
            if (mode & 0o170000) == 0o040000:
                kinds["dir"] += 1
            elif (mode & 0o170000) == 0o120000:
                kinds["symlink"] += 1
            elif (mode & 0o170000) == 0o100000:
                kinds["file"] += 1
                if st.st_nlink > 1:
                    if (st.st_dev, st.st_ino) in seen:
                        hardlinks += 1
                        continue
                    seen.add((st.st_dev, st.st_ino))
                logical += st.st_size
            else:
                kinds["other"] += 1
    return {"entries": sum(kinds.values()), "kinds": kinds, "logical_bytes": logical,
            "extra_hardlinks": hardlinks}


def named_tree(name: str) -> Path:
    """small/large from scripts/rootfs, xl (the ~2.6 GB scaling tree) from benchmarks/rootfs-xl;
    each built once and cached."""
    script = REPO / ("benchmarks/rootfs-xl" if name == "xl" else "scripts/rootfs")
    argv = [str(script)] + ([] if name == "xl" else [name])
    r = subprocess.run(argv, stdout=subprocess.PIPE, text=True)
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines or not Path(lines[-1]).is_dir():
        raise BenchError(f"`{' '.join(argv)}` failed (status {r.returncode}): {r.stdout!r}")
    return Path(lines[-1])


def get_tree(args) -> tuple[str, Path]:
    if args.tree_path:
        p = Path(args.tree_path).resolve()
        if not p.is_dir():
            raise BenchError(f"--tree-path {p} is not a directory")
        return p.name, p
    script = REPO / "scripts" / "rootfs"
    try:
        # stderr passes through: building the rootfs (debootstrap) takes a while and says so.
        r = subprocess.run([str(script), args.tree], stdout=subprocess.PIPE, text=True)
    except OSError as e:
        raise BenchError(f"cannot run `{script} {args.tree}`: {e}") from None
    if r.returncode != 0:
        raise BenchError(f"command `{script} {args.tree}` exited with status {r.returncode}")
    lines = r.stdout.strip().splitlines()
    if not lines or not Path(lines[-1]).is_dir():
        raise BenchError(f"`{script} {args.tree}` printed no tree directory: {r.stdout!r}")
    return args.tree, Path(lines[-1])


class Ctx:
    def __init__(self, ware: Path, tree: Path):
        self.ware, self.tree = ware, tree


def parse_ware_id(ran: Ran) -> str:
    lines = [ln.strip() for ln in ran.stdout.splitlines() if ln.strip()]
    if not lines or len(lines[-1].split()) != 1:
        raise BenchError(f"`{fmt_cmd(ran.argv)}` printed no ware ID on stdout "
                         f"(stdout: {ran.stdout[-300:]!r})")
    return lines[-1]


def ware_stats(ctx: Ctx, store: Path) -> dict:
    try:
        r = run([ctx.ware, "--store", store, "--json", "stats"], what="ware stats")
        return {"stats": json.loads(r.stdout)}
    except (BenchError, json.JSONDecodeError) as e:
        warn(f"ware stats failed (stored size is still measured with du): {e}")
        return {"stats_error": str(e)}


def summarize(runs: list[dict]) -> dict:
    secs = [r["seconds"] for r in runs]
    s = {"median_s": statistics.median(secs), "min_s": min(secs), "max_s": max(secs)}
    if runs and "stored_bytes" in runs[0]:
        s["stored_bytes"] = int(statistics.median(r["stored_bytes"] for r in runs))
    return s


def rounds(tools: list[str], n: int):
    for r in range(n):
        k = r % len(tools)
        yield r, tools[k:] + tools[:k]


def timed(argv, env_extra, args, what) -> dict:
    if not args.warm:
        drop_caches()
    ran = run(argv, env_extra=env_extra, what=what)
    t0 = time.monotonic()
    os.sync()
    sync_s = time.monotonic() - t0
    return ran, {"seconds": ran.seconds, "sync_after_s": sync_s, "user_s": ran.user_s,
                 "sys_s": ran.sys_s, "max_rss_kib": ran.max_rss_kib}


def check_tree(dest: Path, want: dict, who: str) -> dict | None:
    got = tree_summary(dest)
    keys = ("entries", "kinds", "logical_bytes")
    if all(got[k] == want[k] for k in keys):
        return None
    diff = {k: {"want": want[k], "got": got[k]} for k in keys if got[k] != want[k]}
    warn(f"{who} output differs from the source tree: {diff}")
    return diff
MOUNT_TIMEOUT = 900  # seconds; a hung FUSE request must not hang the harness forever


def proc_read_bytes(pid: int | None) -> int | None:
    """read_bytes of /proc/PID/io: bytes the process caused to be read from storage."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("read_bytes:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def mountpoints() -> list[str]:
    """Every mount point of this mount namespace (a dead FUSE mount included, which
    os.path.ismount cannot stat)."""
    try:
        with open("/proc/self/mountinfo") as f:
            return [ln.split()[4] for ln in f]
    except OSError:
        return []


def detach_mounts_below(d: Path) -> None:
    """Detaches (umount -l) whatever is still mounted below `d`, deepest first, with a warning
    each: what a cleanup that went wrong left (e.g. a half-made mount)."""
    left = [m for m in mountpoints() if m.startswith(str(d) + "/")]
    for m in sorted(left, reverse=True):
        warn(f"still mounted after cleanup: {m}; detaching it")
        subprocess.run(["umount", "-l", m])


def wait_listening(proc, addr: str, port: int, fail) -> None:
    """Waits until something accepts TCP connections on addr:port (up to 10 s); when `proc`
    exits first or time runs out, calls fail(why) (which stops it and raises)."""
    import socket
    t0 = time.monotonic()
    while True:
        try:
            with socket.create_connection((addr, port), timeout=0.2):
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() - t0 > 10:
            fail("it exited" if proc.poll() is not None else "timeout")
            return
        time.sleep(0.02)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quiet(argv) -> str | None:
    try:
        r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    text = r.stdout.strip() or r.stderr.strip()
    return text.splitlines()[0] if text else ""


def machine(work: Path) -> dict:
    mem = None
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": len(os.sched_getaffinity(0)), "kernel": os.uname().release,
            "memory_bytes": mem, "cpu": cpu,
            "workdir_fs": quiet(["stat", "-f", "-c", "%T", work])}


def git_info() -> dict:
    commit = quiet(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]) or "uncommitted"
    status = quiet(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"])
    return {"commit": commit, "dirty": bool(status)}


def versions(ware: Path, tools: set[str]) -> dict:
    v = {}
    if "tar" in tools:
        v["tar"] = quiet(["tar", "--version"])
    if "casync" in tools:
        v["casync"] = quiet(["casync", "--version"])
    if "restic" in tools:
        v["restic"] = quiet(["restic", "version"])
    if "borg" in tools:
        v["borg"] = quiet(["borg", "--version"])
    if "warefs" in tools:
        v["warefs"] = quiet([ware, "--version"]) or "unknown"
    if "squashfuse" in tools:
        # squashfuse has no --version; the Debian package version names it.
        v["squashfuse"] = quiet(["dpkg-query", "-W", "-f", "${Version}", "squashfuse"])
        v["mksquashfs"] = quiet(["mksquashfs", "-version"])
    if "runc" in tools:
        v["runc"] = quiet(["runc", "--version"])
    if "warehouse" in tools:
        v["nginx"] = quiet(["nginx", "-v"])
        v["curl"] = quiet(["curl", "--version"])
        v["zstd"] = quiet(["zstd", "--version"])
        v["s3s-fs"] = quiet(["s3s-fs", "--version"])
        v["python (delay-proxy)"] = sys.version.split()[0]
    return v
