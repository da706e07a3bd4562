"""What every group's section of docs/benchmarks.md is made of: the page head, a section's header
(machine, tree, runs), sizes and ratios (`mb`, `x_vs`, `compare`), links to results (`rel`,
`latest`), and the chart helpers (matplotlib, optional: `load_pyplot`, `bars`, `style`,
`footer`, `save`, the colours).
"""

from __future__ import annotations

import json
import statistics
import sys

from pathlib import Path

from .harness import REPO

def md_cell(text: str) -> str:
    return text.replace("|", "\\|")


DOCS_HEAD = """# Benchmarks

Figures measured by `benchmarks/run` on the benchmark trees of the brief (Debian bookworm
root filesystems built by `scripts/rootfs small|large`). Raw results, with the machine, the
commit and every single run, are in `benchmarks/results/`.

## How to read this

- Times are wall-clock seconds: the median of N runs, with the min and max. The tools take
  turns in every round (round-robin), so drift of the machine hits all of them alike.
- "cold": the page cache is dropped before every timed command. Every pack run starts from a
  fresh, empty store or repository (restic and borg repositories are initialised outside the
  timing; warefs creates its store inside it). In the mount group, cold also means warefs's
  daemon stopped (`ware daemon stop`) and every mount made afresh; "warm" is the same command
  again right after a cold run, on the same mount.
- "stored MB" is the apparent size (`du -sb`) of the store/repository directory, in 10^6 bytes:
  the `.tar` for tar, chunk store plus index for casync.
- "x vs warefs" is the peer's time divided by warefs's time: above 1 means warefs is faster,
  below 1 means warefs is behind. For sizes, the peer's stored size divided by warefs's.
- Charts (under each table, same figures): bars are medians, whiskers the min and max of the
  runs, the median is written above each bar; warefs is blue.

## How to reproduce

```
scripts/setup                          # Debian packages, peers (casync, restic, borg, squashfuse), matplotlib
cargo build --release --bin ware
sudo benchmarks/run                    # large tree, 5 runs: pack, unpack, mount, warehouse
sudo benchmarks/run --quick            # small tree, 3 runs
sudo benchmarks/run --only mount       # one group
```

See `benchmarks/README.md` for the options.

"""


def mb(b) -> str:
    return f"{b / 1e6:,.1f}"


def header(doc: dict, rel: str) -> str:
    t = doc["tree"]
    m = doc["machine"]
    git = doc["git"]["commit"] + (" (+ uncommitted changes)" if doc["git"]["dirty"] else "")
    return (f"Tree `{t['name']}`: {mb(t['logical_bytes'])} MB logical, {t['entries']:,} entries; "
            f"{doc['cache']} cache, {doc['runs']} runs; {doc['date']}, commit {git}; "
            f"{m['nproc']} CPUs, {m['memory_bytes'] / 2**30:.0f} GiB, kernel {m['kernel']}"
            + (f"; load average at the start {', '.join(f'{x:.2f}' for x in doc['load_at_start'])}"
               if doc.get("load_at_start") else "") + f". Raw: `{rel}`.")


def describe_diff(diff: dict) -> str:
    parts = []
    if "entries" in diff:
        parts.append(f"{diff['entries']['got']:,} entries instead of {diff['entries']['want']:,}")
    if "kinds" in diff:
        w, g = diff["kinds"]["want"], diff["kinds"]["got"]
        names = {"other": "devices/fifos/sockets"}
        parts += [f"{names.get(k, k)} {w[k]:,} → {g.get(k, 0):,}" for k in w if w[k] != g.get(k, 0)]
    if "logical_bytes" in diff:
        parts.append(f"logical bytes {diff['logical_bytes']['want']:,} → "
                     f"{diff['logical_bytes']['got']:,}")
    return "; ".join(parts)


def mb_or(b) -> str:
    return "n/a" if b is None else mb(b)


def x_vs(peer_s: float, ware_s: float) -> str:
    return f"{peer_s / ware_s:.2f}" if ware_s else "n/a"


def compare(what: str, ware: str, wsec: float, peers: list[tuple[str, float]]) -> str:
    """A plain sentence: where warefs is ahead of each peer and where it is behind."""
    parts = []
    for name, s in peers:
        if s >= wsec:
            parts.append(f"{s / wsec:.2f}x faster than {name} ({s:.2f} s)")
        else:
            parts.append(f"**behind {name}**: {wsec / s:.2f}x slower ({s:.2f} s)")
    return f"- {what}: {ware} takes {wsec:.2f} s; " + "; ".join(parts) + "."


# ---------------------------------------------------------------------------------------------
# Charts (PNG, with matplotlib when it is installed; the tables do without)
# ---------------------------------------------------------------------------------------------

WARE_C, WARE_C2, PEER_C, SQ_C, NATIVE_C = "#1f77b4", "#9ecae1", "#9a9a9a", "#ff7f0e", "#4d4d4d"
SQ_C2 = "#fdd0a2"  # squashfuse_ll
CHART_NOTE = ("matplotlib is not installed for {py}, so {page} gets the tables without "
              "charts (install it: scripts/setup, or `python3 -m pip install matplotlib`, or "
              "`apt-get install python3-matplotlib` for Debian's /usr/bin/python3)")


def load_pyplot(docs: Path):
    """matplotlib.pyplot on the Agg backend, or None (with a note) when it is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("[bench] note: " + CHART_NOTE.format(py=sys.executable, page=rel(docs)),
              file=sys.stderr, flush=True)
        return None
    return plt


def spread(values) -> tuple[float, float, float]:
    vals = [v for v in values if v is not None]
    return statistics.median(vals), min(vals), max(vals)


def subtitle(doc: dict, cache: str | None = None) -> str:
    t = doc["tree"]
    return (f"tree {t['name']} ({mb(t['logical_bytes'])} MB, {t['entries']:,} entries), "
            f"{cache or doc['cache']} cache, {doc['runs']} runs")


def footer(fig, doc: dict, where: str) -> None:
    m, git = doc["machine"], doc["git"]
    fig.text(0.01, 0.01,
             f"Bars: median of {doc['runs']} runs; whiskers: min–max of the runs.\n"
             f"{doc['date']}, commit {git['commit']}"
             f"{' (+ uncommitted changes)' if git['dirty'] else ''}; {m['nproc']} CPUs, "
             f"kernel {m['kernel']}.\nData: {where}", fontsize=7, color="#555555",
             ha="left", va="bottom", linespacing=1.4)


def bars(ax, labels, stats, colors, unit, fmt="{:.2f}") -> None:
    """One bar per (median, min, max) with min–max whiskers and the median written above."""
    x = list(range(len(labels)))
    med = [s[0] for s in stats]
    err = [[s[0] - s[1] for s in stats], [s[2] - s[0] for s in stats]]
    ax.bar(x, med, width=0.6, color=colors, edgecolor="#333333", linewidth=0.6, yerr=err,
           capsize=7, error_kw={"elinewidth": 1.2, "ecolor": "#222222"})
    for i, s in enumerate(stats):
        ax.annotate(f"{fmt.format(s[0])} {unit}", (i, s[2]), xytext=(0, 4),
                    textcoords="offset points", ha="center", va="bottom", fontsize=9,
                    fontweight="bold")
    ax.set_xticks(x, labels, fontsize=8.5)
    ax.set_ylim(0, max(s[2] for s in stats) * 1.18)
    style(ax)


def style(ax) -> None:
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def save(plt, fig, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    tmp.replace(path)


def img(charts: dict | None, name: str, alt: str) -> list[str]:
    return [f"![{alt}]({charts[name]})", ""] if charts and name in charts else []


def rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(REPO))
    except ValueError:
        return str(p)


def latest(results: Path, group: str) -> tuple[dict | None, str | None]:
    files = sorted(results.glob(f"*-{group}.json"))
    if not files:
        return None, None
    with open(files[-1]) as f:
        return json.load(f), rel(files[-1])
