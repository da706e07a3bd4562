"""The report: docs/benchmarks.md rebuilt from the newest result file of each group (one section
per group between its `<!-- GROUP:begin -->` and `<!-- GROUP:end -->` markers), with charts when
matplotlib is installed.
"""

from __future__ import annotations

from pathlib import Path

from . import run as run_group
from . import memory as memory_group
from .harness import log, warn
from .mount import MBEGIN, MEND, chart_mount, render_mount
from .pack import BEGIN, END, chart_pack, chart_unpack, render_group
from .remote import WBEGIN, WEND
from .remote_report import chart_warehouse, render_warehouse
from .render import DOCS_HEAD, latest, load_pyplot, rel
from .scaling import SBEGIN, SEND, chart_scaling, render_scaling

GROUPS = ["pack", "unpack", "mount", "warehouse", "run"]
# Not part of a default run (it takes ~30 minutes): --only scaling.
ALL_GROUPS = GROUPS + ["scaling", "memory"]


def render_charts(docs: Path, found: dict) -> dict[str, str] | None:
    """Renders the charts of the newest results (found: group -> (doc, where)) into the
    directory named after the docs page (docs/benchmarks/). Returns chart name -> link
    relative to the page, or None when matplotlib is missing (the page gets no charts)."""
    plt = load_pyplot(docs)
    if plt is None:
        return None
    out = docs.parent / docs.stem
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for group, fn in (("pack", chart_pack), ("unpack", chart_unpack), ("mount", chart_mount),
                      ("warehouse", chart_warehouse), ("run", run_group.chart_run),
                      ("scaling", chart_scaling)):
        doc, where = found.get(group, (None, None))
        if doc is None:
            continue
        try:
            made += fn(plt, doc, where, out)
        except Exception as e:  # a chart must never cost the tables
            plt.close("all")
            warn(f"could not draw the {group} charts ({type(e).__name__}: {e}); "
                 "the tables are written without them")
    for name in made:
        log(f"wrote {rel(out / name)}")
    return {name: f"{docs.stem}/{name}" for name in made}


def report(results: Path, docs: Path | None) -> None:
    """Prints the tables of the newest results of each group; rewrites the docs sections and
    renders their charts (docs/benchmarks/*.png) when matplotlib is there."""
    found = {g: latest(results, g) for g in ALL_GROUPS}
    # Charts go with the page: none when it is not written (--no-docs).
    charts = render_charts(docs, found) if docs is not None else None
    body, tgt = [], []
    for g in ("pack", "unpack"):
        doc, where = found[g]
        lines, t = render_group(g, doc, where, charts)
        body += lines
        tgt += t
    section = "\n".join([BEGIN, "## Pack and unpack", "", *body, "Targets:", "", *tgt, END])
    mdoc, mwhere = found["mount"]
    mlines = render_mount(mdoc, mwhere, charts)
    msection = "\n".join([MBEGIN, *mlines, MEND])
    wdoc, wwhere = found["warehouse"]
    wlines = render_warehouse(wdoc, wwhere, charts)
    wsection = "\n".join([WBEGIN, *wlines, WEND])
    rlines = run_group.render_run(*found["run"], charts)
    rsection = "\n".join([run_group.BEGIN, *rlines, run_group.END])
    sdoc, swhere = found["scaling"]
    slines = render_scaling(sdoc, swhere, charts)
    ssection = "\n".join([SBEGIN, *slines, SEND])
    memlines = memory_group.render_memory(*found["memory"], charts)
    memsection = "\n".join([memory_group.BEGIN, *memlines, memory_group.END])
    print("\n".join(body + ["Targets:", ""] + tgt + [""] + mlines + [""] + wlines + [""]
                    + rlines + [""] + slines + [""] + memlines))
    if docs is None:
        return
    text = docs.read_text() if docs.exists() else DOCS_HEAD
    for begin, end, sec in ((BEGIN, END, section), (MBEGIN, MEND, msection),
                            (WBEGIN, WEND, wsection),
                            (run_group.BEGIN, run_group.END, rsection), (SBEGIN, SEND, ssection),
                            (memory_group.BEGIN, memory_group.END, memsection)):
        if begin in text and end in text and text.index(begin) < text.index(end):
            a, b = text.index(begin), text.index(end) + len(end)
            text = text[:a] + sec + text[b:]
        else:
            text = text.rstrip("\n") + "\n\n" + sec + "\n"
    docs.parent.mkdir(parents=True, exist_ok=True)
    tmp = docs.with_name(docs.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(docs)
    log(f"updated {rel(docs)}")
