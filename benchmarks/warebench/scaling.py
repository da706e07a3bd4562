"""The `scaling` group (not in a default run: about 30 minutes): the pack and mount groups' pack
and startup figures over the small, large and xl trees, against the tree's size; its section
and chart.
"""

from __future__ import annotations

import os

from pathlib import Path

from .harness import BenchError, Ctx, DISK_FACTOR, log, named_tree, rm_rf, tree_summary
from .mount import MOUNT_LABEL, bench_mount
from .pack import PACK_TOOLS, bench_pack
from .render import (
    PEER_C,
    SQ_C,
    SQ_C2,
    WARE_C,
    WARE_C2,
    compare,
    footer,
    img,
    mb,
    save,
    style,
    x_vs,
)

SBEGIN, SEND = "<!-- scaling:begin -->", "<!-- scaling:end -->"
SCALE_TREES = ["small", "large", "xl"]
SCALE_STARTUP = ["warefs-mount", "warefs-unpack", "tar", "squashfuse", "squashfuse_ll"]


def bench_scaling(args, ware: Path, work: Path) -> dict:
    """Pack (every pack tool) and startup (lazy mount + job vs unpack, tar -x, squashfuse,
    squashfuse_ll) on trees of growing size, one tree after the other, each with its own
    round-robin rounds."""
    import copy
    res = {"_trees": args.scale_trees}
    for name in args.scale_trees:
        tree = named_tree(name)
        summary = tree_summary(tree)
        log(f"scaling: tree {name} ({summary['logical_bytes'] / 1e6:.1f} MB logical, "
            f"{summary['entries']} entries)")
        st = os.statvfs(work)
        need = DISK_FACTOR * summary["logical_bytes"]
        if st.f_bavail * st.f_frsize < need:
            raise BenchError(f"scaling: not enough free disk for tree {name}: need about "
                             f"{need / 1e9:.1f} GB in {work}")
        ctx = Ctx(ware, tree)
        sub = work / f"scaling-{name}"
        sub.mkdir()
        a = copy.copy(args)
        a.mount_tests = ["startup"]
        pack = bench_pack(a, ctx, sub, [t for t in PACK_TOOLS if t in args.tools])
        startup = bench_mount(a, ctx, sub)
        res[name] = {"tree": {"name": name, "path": str(tree), **summary}, "pack": pack,
                     "mount_setup": startup["_setup"], "startup": startup["startup"]}
        rm_rf(sub)
    return res


SCALE_LABEL = {"tar": "tar -c", "casync": "casync make", "restic": "restic backup",
               "borg": "borg create", "warefs": "ware pack"}


def render_scaling(doc: dict | None, where: str | None, charts: dict | None = None
                   ) -> list[str]:
    out = ["## Scaling: startup and pack on trees of growing size", ""]
    if doc is None:
        return out + ["No scaling results yet (`sudo benchmarks/run --only scaling`).", ""]
    res = doc["results"]
    trees = [t for t in res["_trees"] if t in res]
    m, git = doc["machine"], doc["git"]
    out += [f"{doc['date']}, commit {git['commit']}"
            f"{' (+ uncommitted changes)' if git['dirty'] else ''}; {m['nproc']} CPUs, "
            f"{(m.get('memory_bytes') or 0) / 2**30:.0f} GiB, kernel {m['kernel']}; cold cache, {doc['runs']} runs "
            "per tool and tree"
            + (f"; load average at the start {', '.join(f'{x:.2f}' for x in doc['load_at_start'])}"
               if doc.get("load_at_start") else "") + f". Raw: `{where}`.", "",
            "Trees: `small` and `large` from `scripts/rootfs`; `xl` from `benchmarks/rootfs-xl` "
            "(the large tree's debootstrap plus `apt-get install --no-install-recommends "
            "python3-scipy python3-pandas python3-matplotlib llvm clang gfortran "
            "openjdk-17-jre-headless golang-go rustc cmake`). Each tree gets the pack group "
            "(every tool from an empty store/repo) and the mount group's startup test (the "
            "same commands and job as above: `ls /usr/bin; dpkg -l` in a chroot), interleaved "
            "round-robin within the tree.", "",
            "### Startup (cold) to a first job, by tree size", "",
            "| tree | logical MB | entries | " + " | ".join(
                f"{MOUNT_LABEL[t]} s" for t in SCALE_STARTUP) + " | unpack / mount | "
            "tar -x / mount | squashfuse / mount |",
            "|---|---:|---:|" + "---:|" * (len(SCALE_STARTUP) + 3)]
    said = []
    for tn in trees:
        r, tr = res[tn], res[tn]["tree"]
        st = r["startup"]
        cells = []
        for t in SCALE_STARTUP:
            x = st.get(t)
            cells.append(f"{x['median_s']:.2f} ({x['min_s']:.2f}–{x['max_s']:.2f})" if x
                         else "n/a")
        w = st.get("warefs-mount")
        ratios = [x_vs(st[t]["median_s"], w["median_s"]) if w and t in st else "n/a"
                  for t in ("warefs-unpack", "tar", "squashfuse")]
        out.append(f"| {tn} | {mb(tr['logical_bytes'])} | {tr['entries']:,} | "
                   + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
        if w:
            said.append(compare(f"Startup, tree {tn} ({mb(tr['logical_bytes'])} MB)",
                                "the lazy warefs mount", w["median_s"],
                                [(MOUNT_LABEL[t], st[t]["median_s"]) for t in SCALE_STARTUP[1:]
                                 if t in st]))
    out += ["", "Cells: median s (min–max). Ratios: the peer's median over the lazy mount's "
            "(above 1: the mount is faster).", ""]
    out += ["### Pack, by tree size", "",
            "| tree | logical MB | " + " | ".join(f"{SCALE_LABEL[t]} s" for t in PACK_TOOLS)
            + " | " + " | ".join(f"{SCALE_LABEL[t]} MB" for t in PACK_TOOLS) + " |",
            "|---|---:|" + "---:|" * (2 * len(PACK_TOOLS))]
    for tn in trees:
        pk, tr = res[tn]["pack"], res[tn]["tree"]
        out.append(f"| {tn} | {mb(tr['logical_bytes'])} | " + " | ".join(
            f"{pk[t]['median_s']:.2f} ({pk[t]['min_s']:.2f}–{pk[t]['max_s']:.2f})"
            if t in pk else "n/a" for t in PACK_TOOLS) + " | " + " | ".join(
            mb(pk[t]["stored_bytes"]) if t in pk else "n/a" for t in PACK_TOOLS) + " |")
        w = pk.get("warefs")
        if w:
            said.append(compare(f"Pack, tree {tn}", "ware pack", w["median_s"],
                                [(SCALE_LABEL[t], pk[t]["median_s"]) for t in PACK_TOOLS
                                 if t in pk and t != "warefs"])
                        + " Stored: " + "; ".join(
                            f"{SCALE_LABEL[t]} {mb(pk[t]['stored_bytes'])} MB "
                            f"({pk[t]['stored_bytes'] / w['stored_bytes']:.2f}x warefs's "
                            f"{mb(w['stored_bytes'])} MB)" for t in PACK_TOOLS
                            if t in pk and t != "warefs") + ".")
    out += ["", "Cells: median s (min–max); stored MB = `du -sb` of the store/repo after one "
            "pack.", ""]
    out += img(charts, "scaling.png", "Startup time and pack time against the tree's size")
    out += ["Where warefs stands:", ""] + said + [""]
    return out


def chart_scaling(plt, doc, where, out: Path) -> list[str]:
    res = doc["results"]
    trees = [t for t in res["_trees"] if t in res]
    size = {t: res[t]["tree"]["logical_bytes"] / 1e6 for t in trees}
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(17, 6))
    colors = {"warefs-mount": WARE_C, "warefs-unpack": WARE_C2, "tar": PEER_C,
              "squashfuse": SQ_C, "squashfuse_ll": SQ_C2}
    marks = {"warefs-mount": "o", "warefs-unpack": "s", "tar": "^", "squashfuse": "D",
             "squashfuse_ll": "v"}

    def line(ax, label, xs, stats, color, marker, lw=1.6):
        ax.errorbar(xs, [s[0] for s in stats], yerr=[[s[0] - s[1] for s in stats],
                                                    [s[2] - s[0] for s in stats]],
                    color=color, marker=marker, label=label, capsize=4, linewidth=lw,
                    markeredgecolor="#333333")
        for x, s_ in zip(xs, stats):
            ax.annotate(f"{s_[0]:.2f}", (x, s_[0]), xytext=(5, 3), textcoords="offset points",
                        fontsize=7.5, color="#222222")

    for t in SCALE_STARTUP:
        have = [tn for tn in trees if t in res[tn]["startup"]]
        if have:
            line(a1, MOUNT_LABEL[t], [size[tn] for tn in have],
                 [(res[tn]["startup"][t]["median_s"], res[tn]["startup"][t]["min_s"],
                   res[tn]["startup"][t]["max_s"]) for tn in have], colors[t], marks[t],
                 2.6 if t == "warefs-mount" else 1.4)
    a1.set_title("Startup (cold): ready + `ls /usr/bin; dpkg -l` (log scale)", fontsize=10)
    a1.set_ylabel("seconds (median; bars: min–max)")
    a1.set_yscale("log")
    pc = {"tar": PEER_C, "casync": "#8c564b", "restic": "#2ca02c", "borg": "#9467bd",
          "warefs": WARE_C}
    pm = {"tar": "^", "casync": "s", "restic": "D", "borg": "v", "warefs": "o"}
    for t in PACK_TOOLS:
        have = [tn for tn in trees if t in res[tn]["pack"]]
        if have:
            line(a2, SCALE_LABEL[t], [size[tn] for tn in have],
                 [(res[tn]["pack"][t]["median_s"], res[tn]["pack"][t]["min_s"],
                   res[tn]["pack"][t]["max_s"]) for tn in have], pc[t], pm[t],
                 2.6 if t == "warefs" else 1.4)
            a3.plot([size[tn] for tn in have],
                    [res[tn]["pack"][t]["stored_bytes"] / 1e6 for tn in have], color=pc[t],
                    marker=pm[t], label=SCALE_LABEL[t], linewidth=2.6 if t == "warefs" else 1.4,
                    markeredgecolor="#333333")
    a2.set_title("Pack time (cold, empty store/repo)", fontsize=10)
    a2.set_ylabel("seconds (median; bars: min–max)")
    a3.set_title("Stored size after pack (du -sb)", fontsize=10)
    a3.set_ylabel("MB (10^6 bytes)")
    for ax in (a1, a2, a3):
        ax.set_xlabel("tree size, logical MB (" + ", ".join(
            f"{tn} {size[tn]:,.0f}" for tn in trees) + ")", fontsize=8.5)
        ax.set_xlim(0, max(size.values()) * 1.12)
        if ax is not a1:
            ax.set_ylim(bottom=0)
        ax.legend(fontsize=8, frameon=False)
        style(ax)
    fig.suptitle(f"Scaling: startup and pack against tree size (cold cache, {doc['runs']} runs "
                 "per tool and tree)", fontsize=11)
    fig.subplots_adjust(bottom=0.2, top=0.88, wspace=0.25)
    footer(fig, doc, where)
    save(plt, fig, out / "scaling.png")
    return ["scaling.png"]
