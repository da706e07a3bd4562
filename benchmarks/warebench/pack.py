"""The `pack` and `unpack` groups: `ware pack` against tar, casync, restic and borg (each from a
fresh, empty store or repo, page cache dropped), and `ware unpack` against `tar -x`, with the
unpacked tree checked against the source; their section of docs/benchmarks.md and charts.
"""

from __future__ import annotations

from pathlib import Path

from .harness import (
    Ctx,
    Ran,
    check_tree,
    du_bytes,
    fmt_cmd,
    log,
    parse_ware_id,
    rm_rf,
    rounds,
    run,
    summarize,
    timed,
    ware_stats,
    warn,
)
from .render import (
    PEER_C,
    WARE_C,
    bars,
    describe_diff,
    footer,
    header,
    img,
    mb,
    save,
    spread,
    subtitle,
)

BEGIN, END = "<!-- pack:begin -->", "<!-- pack:end -->"
PACK_TOOLS = ["tar", "casync", "restic", "borg", "warefs"]
UNPACK_TOOLS = ["tar", "warefs"]


class PackTool:
    """One pack peer. `d` is a fresh empty directory for the run; `stored(d)` is measured."""
    name = ""

    def prepare(self, ctx: Ctx, d: Path) -> None:  # untimed
        pass

    def command(self, ctx: Ctx, d: Path) -> tuple[list, dict]:
        raise NotImplementedError

    def stored(self, d: Path) -> Path:
        return d / "store"

    def after(self, ctx: Ctx, d: Path, ran: Ran) -> dict:  # untimed
        return {}


class TarPack(PackTool):
    name = "tar"

    def command(self, ctx, d):
        (d / "store").mkdir()
        return ["tar", "-cf", d / "store" / "tree.tar", "-C", ctx.tree, "."], {}


class CasyncPack(PackTool):
    name = "casync"

    def command(self, ctx, d):
        (d / "store").mkdir()  # measured: the chunk store and the index
        return ["casync", "make", f"--store={d / 'store' / 'chunks'}",
                d / "store" / "tree.caidx", ctx.tree], {}


class ResticPack(PackTool):
    name = "restic"

    def env(self, d):
        # Defaults, only the cache is kept inside the run's directory (a fresh repo has an
        # empty cache anyway) so nothing piles up in ~/.cache/restic.
        return {"RESTIC_PASSWORD": "warefs-bench", "RESTIC_CACHE_DIR": str(d / "cache")}

    def prepare(self, ctx, d):
        run(["restic", "init", "--repo", d / "store"], env_extra=self.env(d),
            what="restic repo init")

    def command(self, ctx, d):
        return ["restic", "backup", "--repo", d / "store", ctx.tree], self.env(d)


class BorgPack(PackTool):
    name = "borg"

    def env(self, d):
        return {"BORG_BASE_DIR": str(d / "home"),
                "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
                "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"}

    def prepare(self, ctx, d):
        run(["borg", "init", "-e", "none", d / "store"], env_extra=self.env(d),
            what="borg repo init")

    def command(self, ctx, d):
        return ["borg", "create", f"{d / 'store'}::bench", ctx.tree], self.env(d)


class WarePack(PackTool):
    name = "warefs"

    def command(self, ctx, d):
        # The peers keep device nodes; so does warefs here (its default leaves them out).
        return [ctx.ware, "--store", d / "store", "pack", "--devices", "keep", ctx.tree], {}

    def after(self, ctx, d, ran):
        return {"id": parse_ware_id(ran), **ware_stats(ctx, d / "store")}


PACKERS = {t.name: t for t in (TarPack(), CasyncPack(), ResticPack(), BorgPack(), WarePack())}


def bench_pack(args, ctx: Ctx, work: Path, tools: list[str]) -> dict:
    res = {t: {"command": None, "runs": []} for t in tools}
    for r, order in rounds(tools, args.runs):
        for name in order:
            tool = PACKERS[name]
            d = work / "pack" / name
            rm_rf(d)
            d.mkdir(parents=True)
            tool.prepare(ctx, d)
            argv, env = tool.command(ctx, d)
            res[name]["command"] = fmt_cmd(argv, env).replace(str(d), "$RUN")
            ran, m = timed(argv, env, args, f"{name} pack, run {r + 1}")
            m["stored_bytes"] = du_bytes(tool.stored(d))
            m.update(tool.after(ctx, d, ran))
            res[name]["runs"].append(m)
            log(f"pack {r + 1}/{args.runs} {name:7} {m['seconds']:8.2f} s   "
                f"stored {m['stored_bytes'] / 1e6:9.1f} MB")
            rm_rf(d)
    for name in tools:
        res[name].update(summarize(res[name]["runs"]))
    if "warefs" in res:
        ids = sorted({m["id"] for m in res["warefs"]["runs"]})
        res["warefs"]["ids"] = ids
        if len(ids) != 1:
            warn(f"packing the same tree gave different ware IDs: {ids}")
    return res


def bench_unpack(args, ctx: Ctx, work: Path, tools: list[str], source: dict) -> dict:
    u = work / "unpack"
    u.mkdir(parents=True)
    setup = {}
    if "tar" in tools:
        log("unpack setup: tar -cf of the tree (untimed)")
        run(["tar", "-cf", u / "tree.tar", "-C", ctx.tree, "."], what="making the tar to unpack")
    if "warefs" in tools:
        log("unpack setup: ware pack of the tree (untimed)")
        ran = run([ctx.ware, "--store", u / "store", "pack", "--devices", "keep", ctx.tree],
                  what="packing the ware to unpack")
        setup["ware_id"] = parse_ware_id(ran)
        setup["ware_stored_bytes"] = du_bytes(u / "store")
    cmds = {"tar": lambda dest: ["tar", "-xf", u / "tree.tar", "-C", dest],
            "warefs": lambda dest: [ctx.ware, "--store", u / "store", "unpack",
                                    setup["ware_id"], dest]}
    res = {t: {"command": None, "runs": []} for t in tools}
    for r, order in rounds(tools, args.runs):
        for name in order:
            dest = u / "dest"
            rm_rf(dest)
            dest.mkdir()
            argv = cmds[name](dest)
            res[name]["command"] = fmt_cmd(argv).replace(str(u), "$WORK")
            _, m = timed(argv, {}, args, f"{name} unpack, run {r + 1}")
            diff = check_tree(dest, source, f"{name} unpack (run {r + 1})")
            if diff:
                m["tree_differs"] = diff
            res[name]["runs"].append(m)
            log(f"unpack {r + 1}/{args.runs} {name:7} {m['seconds']:8.2f} s"
                + ("   (TREE DIFFERS)" if diff else ""))
            rm_rf(dest)
    for name in tools:
        res[name].update(summarize(res[name]["runs"]))
    res["_setup"] = setup
    return res

LABEL = {"pack": {"tar": "tar -c", "casync": "casync make", "restic": "restic backup",
                  "borg": "borg create", "warefs": "ware pack"},
         "unpack": {"tar": "tar -x", "warefs": "ware unpack"}}


def render_group(group: str, doc: dict | None, rel: str | None,
                 charts: dict | None = None) -> tuple[list[str], list[str]]:
    """Returns (markdown lines, target lines)."""
    title = "Pack" if group == "pack" else "Unpack"
    if doc is None:
        return ([f"### {title}", "", f"No {group} results yet.", ""],
                [f"- {title}: not measured yet."])
    res = doc["results"]
    tools = [t for t in (PACK_TOOLS if group == "pack" else UNPACK_TOOLS) if t in res]
    w = res.get("warefs")
    out = [f"### {title}", "", header(doc, rel), ""]
    if group == "pack":
        out += ["| tool | median s | min s | max s | stored MB | time x vs warefs "
                "| size x vs warefs |", "|---|---:|---:|---:|---:|---:|---:|"]
    else:
        out += ["| tool | median s | min s | max s | time x vs warefs |",
                "|---|---:|---:|---:|---:|"]
    differs = []
    for t in tools:
        r = res[t]
        tx = f"{r['median_s'] / w['median_s']:.2f}" if w else "n/a"
        label = LABEL[group][t]
        if any("tree_differs" in x for x in r["runs"]):
            differs.append(f"`{label}`: {describe_diff(r['runs'][0]['tree_differs'])}")
            label += " ⚠"
        row = f"| {label} | {r['median_s']:.2f} | {r['min_s']:.2f} | {r['max_s']:.2f} |"
        if group == "pack":
            sx = f"{r['stored_bytes'] / w['stored_bytes']:.2f}" if w and w["stored_bytes"] else "n/a"
            row += f" {mb(r['stored_bytes'])} | {tx} | {sx} |"
        else:
            row += f" {tx} |"
        out.append(row)
    out.append("")
    for d in differs:
        out += [f"⚠ output tree differs from the source: {d}", ""]
    if group == "pack":
        out += img(charts, "pack-time.png", "Pack time, median with min–max, per tool")
        out += img(charts, "pack-size.png", "Stored size after pack, per tool")
    else:
        out += img(charts, "unpack-time.png", "Unpack time, median with min–max, per tool")
    return out, targets(group, res)


def targets(group: str, res: dict) -> list[str]:
    w = res.get("warefs")
    if group == "pack":
        goal = ("Pack at least 2x faster than casync and restic, with a stored size no larger")
        peers = [p for p in ("casync", "restic") if p in res]
        if not w or len(peers) < 2:
            return [f"- {goal}: not measurable (warefs, casync and restic must all be run)."]
        parts, ok = [], True
        for p in peers:
            speed = res[p]["median_s"] / w["median_s"]
            size_ok = w["stored_bytes"] <= res[p]["stored_bytes"]
            fast_ok = speed >= 2.0
            ok &= size_ok and fast_ok
            sp = (f"{speed:.2f}x faster than {p}" if speed >= 1
                  else f"{1 / speed:.2f}x slower than {p}")
            sp += f" ({res[p]['median_s']:.2f} s vs {w['median_s']:.2f} s"
            sp += ")" if fast_ok else ", warefs is behind: short of 2x)"
            sz = res[p]["stored_bytes"]
            if size_ok:
                sz_txt = f"stores {mb(w['stored_bytes'])} MB vs {mb(sz)} MB (no larger)"
            else:
                sz_txt = (f"stores {mb(w['stored_bytes'])} MB vs {mb(sz)} MB (warefs is behind: "
                          f"{(w['stored_bytes'] / sz - 1) * 100:.1f}% larger)")
            parts.append(f"{sp}; {sz_txt}")
        return [f"- {goal}: **{'met' if ok else 'NOT met'}**. warefs is " + "; ".join(parts) + "."]
    goal = "Unpack within 1.5x of `tar -x`"
    if not w or "tar" not in res:
        return [f"- {goal}: not measurable (warefs and tar must both be run)."]
    ratio = w["median_s"] / res["tar"]["median_s"]
    ok = ratio <= 1.5
    bad = any("tree_differs" in x for x in w["runs"])
    txt = (f"- {goal}: **{'met' if ok and not bad else 'NOT met'}**. `ware unpack` takes "
           f"{w['median_s']:.2f} s, {ratio:.2f}x `tar -x` ({res['tar']['median_s']:.2f} s)")
    if not ok:
        txt += "; warefs is behind"
    if bad:
        txt += "; and its output tree differs from the source"
    return [txt + "."]


def chart_pack(plt, doc, where, out: Path) -> list[str]:
    res = doc["results"]
    tools = [t for t in PACK_TOOLS if t in res]
    labels = [LABEL["pack"][t] for t in tools]
    colors = [WARE_C if t == "warefs" else PEER_C for t in tools]
    fig, ax = plt.subplots(figsize=(8, 4.8))
    bars(ax, labels, [spread(r["seconds"] for r in res[t]["runs"]) for t in tools], colors, "s")
    ax.set_ylabel("wall-clock time (s)")
    ax.set_title(f"Pack time: ware pack vs tar, casync, restic, borg\n{subtitle(doc)}",
                 fontsize=11)
    fig.subplots_adjust(bottom=0.2, top=0.86)
    footer(fig, doc, where)
    save(plt, fig, out / "pack-time.png")

    fig, ax = plt.subplots(figsize=(8, 4.8))
    bars(ax, labels, [spread(r["stored_bytes"] / 1e6 for r in res[t]["runs"]) for t in tools],
         colors, "MB", "{:,.1f}")
    ax.set_ylabel("stored size (MB = 10^6 bytes, du -sb)")
    ax.set_title(f"Stored size after pack: ware pack vs tar, casync, restic, borg\n"
                 f"{subtitle(doc)}", fontsize=11)
    fig.subplots_adjust(bottom=0.2, top=0.86)
    footer(fig, doc, where)
    save(plt, fig, out / "pack-size.png")
    return ["pack-time.png", "pack-size.png"]


def chart_unpack(plt, doc, where, out: Path) -> list[str]:
    res = doc["results"]
    tools = [t for t in UNPACK_TOOLS if t in res]
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    bars(ax, [LABEL["unpack"][t] for t in tools],
         [spread(r["seconds"] for r in res[t]["runs"]) for t in tools],
         [WARE_C if t == "warefs" else PEER_C for t in tools], "s")
    ax.set_ylabel("wall-clock time (s)")
    ax.set_title(f"Unpack time: ware unpack vs tar -x\n{subtitle(doc)}", fontsize=11)
    fig.subplots_adjust(bottom=0.2, top=0.86)
    footer(fig, doc, where)
    save(plt, fig, out / "unpack-time.png")
    return ["unpack-time.png"]
