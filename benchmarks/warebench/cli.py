"""The command line of benchmarks/run: its flags (`parse_args`), the checks that every tool a
group needs is installed, the scratch directory, and the loop over the groups, each result
written to benchmarks/results/STAMP-GROUP.json before the report is rebuilt.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from . import run as run_group
from . import memory as memory_group
from .harness import (
    BenchError,
    Ctx,
    DISK_FACTOR,
    DOCS,
    REPO,
    RESULTS_DIR,
    SIZE_NOTE,
    drop_caches,
    get_tree,
    git_info,
    log,
    machine,
    rm_rf,
    tree_summary,
    versions,
    warn,
)
from .mount import MOUNT_TIMING, bench_mount
from .pack import PACK_TOOLS, UNPACK_TOOLS, bench_pack, bench_unpack
from .remote import WH_ALL_TOOLS, WH_TIMING, bench_warehouse
from .render import rel
from .report import ALL_GROUPS, GROUPS, report
from .scaling import SCALE_TREES, bench_scaling


def parse_args():
    ap = argparse.ArgumentParser(
        description="Benchmarks of warefs: pack/unpack against tar, casync, restic and borg; "
                    "mount (startup, walk, read-all) against unpack, tar, squashfuse and native; "
                    "cold start from an HTTP warehouse against curl | tar -x.")
    ap.add_argument("--tree", choices=["small", "large"], help="benchmark tree (default large)")
    ap.add_argument("--tree-path", metavar="DIR", help="benchmark an arbitrary tree instead")
    ap.add_argument("--runs", type=int, metavar="N", help="runs per tool (default 5)")
    ap.add_argument("--only", choices=ALL_GROUPS,
                    help="run one group only (scaling runs only when named here)")
    ap.add_argument("--mount-tests", default="startup,walk,read", metavar="LIST",
                    help="mount group: subset of startup,walk,read (default all)")
    ap.add_argument("--scale-trees", metavar="LIST",
                    help="scaling group: trees, of small,large,xl (default all three; "
                         "--quick: small,large)")
    ap.add_argument("--memory-runs", type=int, default=1000, metavar="N",
                    help="memory group: small runs on one daemon (default 1000)")
    ap.add_argument("--quick", action="store_true", help="shorthand for --runs 3 --tree small")
    ap.add_argument("--warm", action="store_true", help="do not drop the page cache before runs")
    ap.add_argument("--tools", metavar="LIST",
                    help=f"comma-separated subset of {','.join(PACK_TOOLS)} (default all)")
    ap.add_argument("--cap-mbit", type=int, default=100, metavar="N",
                    help="warehouse group: also run over a link capped at N Mbit/s (network "
                         "namespace + veth + tc tbf; default 100; 0 = loopback only)")
    ap.add_argument("--cap-runs", type=int, metavar="N",
                    help="warehouse group: runs over the capped link (default --runs)")
    ap.add_argument("--rtt-ms", type=float, default=10, metavar="MS",
                    help="warehouse group: also run over a long link with MS of round-trip "
                         "time (benchmarks/delay-proxy, MS/2 each way) capped at --rtt-mbit "
                         "(tc tbf), from nginx and from s3s-fs (default 10; 0 = none)")
    ap.add_argument("--rtt-mbit", type=int, default=1000, metavar="N",
                    help="warehouse group: the long link's cap (default 1000)")
    ap.add_argument("--rtt-runs", type=int, metavar="N",
                    help="warehouse group: runs over the long link (default --runs)")
    ap.add_argument("--links", metavar="LIST",
                    help="warehouse group: comma-separated subset of loopback,capped,rtt "
                         "(default all three)")
    ap.add_argument("--wh-tools", metavar="LIST",
                    help=f"warehouse group: subset of {','.join(WH_ALL_TOOLS)} (default all; "
                         "the -s3 ones run on the long link only)")
    ap.add_argument("--wh-variants", metavar="NAME=PATH,…",
                    help="warehouse group: also run each warefs way with these ware binaries "
                         "(tools warefs@NAME), interleaved with the others (for tuning)")
    ap.add_argument("--ware", metavar="PATH",
                    help="ware binary (default target/release/ware, built if missing)")
    ap.add_argument("--workdir", default="/var/tmp/warefs-bench", metavar="DIR",
                    help="scratch space for stores and outputs (default /var/tmp/warefs-bench)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    ap.add_argument("--report", action="store_true",
                    help="run nothing: rebuild the tables and charts from the newest "
                         "results")
    ap.add_argument("--results", default=str(RESULTS_DIR), metavar="DIR",
                    help="where the JSON results go (default benchmarks/results)")
    ap.add_argument("--docs", default=str(DOCS), metavar="FILE",
                    help="markdown file whose pack, mount and warehouse sections are rewritten "
                         "(default "
                         "docs/benchmarks.md)")
    a = ap.parse_args()
    a.runs = a.runs if a.runs is not None else (3 if a.quick else 5)
    a.tree = a.tree or ("small" if a.quick else "large")
    if a.runs < 1 or (a.cap_runs is not None and a.cap_runs < 1):
        ap.error("--runs and --cap-runs must be at least 1")
    if a.cap_mbit < 0:
        ap.error("--cap-mbit must be 0 (no capped link) or more")
    spec, a.wh_variants = a.wh_variants or "", {}
    for item in spec.split(","):
        if item.strip():
            k, _, v = item.partition("=")
            if not v or not os.access(v, os.X_OK):
                ap.error(f"--wh-variants: {item!r} is not NAME=EXECUTABLE")
            a.wh_variants[k.strip()] = Path(v).resolve()
    a.mount_tests = [x.strip() for x in a.mount_tests.split(",") if x.strip()]
    a.scale_trees = ([x.strip() for x in a.scale_trees.split(",") if x.strip()]
                     if a.scale_trees else (["small", "large"] if a.quick else SCALE_TREES))
    if set(a.scale_trees) - set(SCALE_TREES):
        ap.error("--scale-trees: choose from small, large, xl")
    a.links = [x.strip() for x in a.links.split(",")] if a.links else None
    if a.links and set(a.links) - {"loopback", "capped", "rtt"}:
        ap.error("--links: choose from loopback, capped, rtt")
    a.wh_tools = (WH_ALL_TOOLS if not a.wh_tools else
                  [t.strip() for t in a.wh_tools.split(",") if t.strip()])
    if set(a.wh_tools) - set(WH_ALL_TOOLS):
        ap.error(f"--wh-tools: choose from {','.join(WH_ALL_TOOLS)}")
    a.tools = PACK_TOOLS if not a.tools else [t.strip() for t in a.tools.split(",") if t.strip()]
    bad = [t for t in a.tools if t not in PACK_TOOLS]
    if bad:
        ap.error(f"unknown tool(s) {bad}; choose from {PACK_TOOLS}")
    return a


def find_ware(args) -> Path:
    if args.ware:
        p = Path(args.ware).resolve()
        if not os.access(p, os.X_OK):
            raise BenchError(f"--ware {p} is not an executable file")
        return p
    p = REPO / "target" / "release" / "ware"
    if not p.exists():
        log("target/release/ware is missing: running `cargo build --release --bin ware`")
        r = subprocess.run(["cargo", "build", "--release", "--bin", "ware"], cwd=REPO)
        if r.returncode != 0:
            raise BenchError(f"`cargo build --release --bin ware` (in {REPO}) exited with "
                             f"status {r.returncode}")
        if not p.exists():
            raise BenchError(f"cargo build succeeded but {p} does not exist")
    return p


def main() -> int:
    args = parse_args()
    if args.report:
        report(Path(args.results), None if args.no_docs else Path(args.docs))
        return 0
    groups = [args.only] if args.only else list(GROUPS)
    needed = set(args.tools) if set(groups) & {"pack", "unpack"} else set()
    unpack_tools = [t for t in UNPACK_TOOLS if t in needed]
    if "unpack" in groups and not unpack_tools:
        raise BenchError("unpack compares tar and warefs: --tools must include one of them")
    if "scaling" in groups:
        needed |= set(args.tools) | {"tar", "warefs", "squashfuse"}
    if "mount" in groups:  # the mount group runs all its peers, whatever --tools says
        needed |= {"tar", "warefs", "squashfuse"}
    if "warehouse" in groups:
        needed |= {"tar", "warefs", "warehouse"}
    if "run" in groups:
        needed |= {"tar", "warefs", "squashfuse", "runc"}
    if "memory" in groups:
        needed |= {"warefs", "squashfuse"}
    cmds = {"tar": ["tar"], "casync": ["casync"], "restic": ["restic"], "borg": ["borg"],
            "squashfuse": ["squashfuse", "squashfuse_ll", "mksquashfs", "fusermount3", "chroot",
                           "bash"],
            "runc": ["runc"],
            "warehouse": ["nginx", "curl", "zstd", "chroot", "bash"]
                         + (["ip", "tc"] if args.cap_mbit or args.rtt_ms else [])
                         + (["s3s-fs"] if args.rtt_ms else [])}
    missing = [c for t, cs in cmds.items() if t in needed for c in cs if not shutil.which(c)]
    if missing:
        raise BenchError(f"missing peer tool(s): {', '.join(missing)} (run scripts/setup)")
    if set(groups) & {"mount", "warehouse", "run", "scaling", "memory"} and (os.geteuid() != 0 or
                                                  not os.path.exists("/dev/fuse")):
        raise BenchError("the mount and warehouse groups mount FUSE filesystems and run chroot "
                         "(and make a network namespace): run them as root on a machine with "
                         "/dev/fuse")
    ware = find_ware(args) if "warefs" in needed else Path("/nonexistent/ware")
    if not args.warm:
        drop_caches()  # fail early when not allowed

    tree_name, tree = get_tree(args)
    log(f"tree {tree_name}: {tree}")
    source = tree_summary(tree)
    log(f"tree: {source['logical_bytes'] / 1e6:.1f} MB logical, {source['entries']} entries")

    base = Path(args.workdir)
    base.mkdir(parents=True, exist_ok=True)
    st = os.statvfs(base)
    free = st.f_bavail * st.f_frsize
    need = DISK_FACTOR * source["logical_bytes"]
    if free < need:
        raise BenchError(f"not enough free disk space in {base}: need about {need / 1e9:.1f} GB "
                         f"({DISK_FACTOR}x the tree's {source['logical_bytes'] / 1e9:.2f} GB), "
                         f"have {free / 1e9:.1f} GB; free some space or use --workdir elsewhere")
    work = Path(tempfile.mkdtemp(prefix="run-", dir=base))
    ctx = Ctx(ware, tree)
    common = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cache": "warm" if args.warm else "cold",
        "runs": args.runs,
        "machine": machine(work),
        "git": git_info(),
        "tree": {"name": tree_name, "path": str(tree), **source},
        "size_measure": SIZE_NOTE,
        "load_at_start": os.getloadavg(),
        "timing": "wall clock (time.monotonic) around the command; page cache dropped before "
                  "each run unless warm; sync_after_s is a separate os.sync() after it",
        "versions": versions(ware, needed),
    }
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    try:
        for g in groups:
            if g == "pack":
                tools = [t for t in PACK_TOOLS if t in needed]
                res = bench_pack(args, ctx, work, tools)
            elif g == "unpack":
                res = bench_unpack(args, ctx, work, unpack_tools, source)
            elif g == "warehouse":
                res = bench_warehouse(args, ctx, work)
            elif g == "run":
                res = run_group.bench_run(args, ctx, work)
            elif g == "scaling":
                res = bench_scaling(args, ware, work)
            elif g == "memory":
                res = memory_group.bench_memory(args, ctx, work)
            else:
                res = bench_mount(args, ctx, work)
            doc = {"group": g, **common, "results": res}
            if g == "mount":
                doc["cache"] = ("warm only (--warm)" if args.warm else
                                "cold and warm (startup cold)")
                doc["timing"] = MOUNT_TIMING
            if g == "warehouse":
                doc["timing"] = WH_TIMING
                doc["cache"] = "cold"  # always: the group is about a cold start
                doc["cap_mbit"] = args.cap_mbit or None
                doc["cap_runs"] = (args.cap_runs or args.runs) if args.cap_mbit else None
                doc["rtt_ms"] = args.rtt_ms or None
                doc["rtt_mbit"] = args.rtt_mbit if args.rtt_ms else None
                doc["load"] = os.getloadavg()
            if g == "run":
                doc.update(run_group.doc_fields(args))
            results = Path(args.results)
            results.mkdir(parents=True, exist_ok=True)
            out = results / f"{stamp}-{g}.json"
            out.write_text(json.dumps(doc, indent=2) + "\n")
            log(f"wrote {rel(out)}")
    finally:
        if args.keep:
            log(f"kept scratch directory {work}")
        else:
            try:
                rm_rf(work)
            except BenchError as e:
                warn(str(e))
    report(Path(args.results), None if args.no_docs else Path(args.docs))
    return 0


def _on_term(signum, frame):
    raise SystemExit(128 + signum)


def entry() -> None:
    """benchmarks/run: exit 0 on success, 1 on a benchmark error (named), 130 on Ctrl-C; SIGTERM
    ends it as an exception would, so every scratch directory, mount and server is cleaned up."""
    signal.signal(signal.SIGTERM, _on_term)
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"benchmarks/run: error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("benchmarks/run: interrupted", file=sys.stderr)
        sys.exit(130)
