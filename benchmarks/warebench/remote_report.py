"""The `warehouse` group's section of the report and its charts (the measuring is in
remote.py).
"""

from __future__ import annotations

import statistics

from pathlib import Path

from .remote import (
    WH_ALL_TOOLS,
    WH_JOB,
    WH_JOB_C,
    WH_LABEL,
    WH_SHORT,
    WH_SPEEDUP_TARGET,
    WH_TARGET,
    link_kind,
    link_title,
    wh_base,
)
from .render import (
    PEER_C,
    WARE_C,
    bars,
    compare,
    footer,
    header,
    img,
    mb,
    md_cell,
    save,
    spread,
    subtitle,
    x_vs,
)
from .servers import curl_s3


def render_warehouse(doc: dict | None, where: str | None, charts: dict | None = None
                     ) -> list[str]:
    out = ["## Warehouse: cold start over HTTP", ""]
    if doc is None:
        return out + ["No warehouse results yet.", ""]
    res, setup = doc["results"], doc["results"]["_setup"]
    links = res.get("_links", [k for k in res if not k.startswith("_")])
    image = {"warefs": setup["warehouse_bytes"], "warefs-noguess": setup["warehouse_bytes"],
             "warefs-local": setup["warehouse_bytes"],
             "warefs-prof": setup["warehouse_bytes"],
             "warefs-prof-c": setup["warehouse_bytes"], "tar": setup["tar_bytes"],
             "tar.zst": setup["tar_zst_bytes"]}
    image.update({t + "-s3": v for t, v in image.items()})
    linfo = setup.get("links", {})
    prof = setup.get("servers", {}).get("profile") or {}
    out += [header(doc, where), "",
            "The tree is served by nginx (one worker, `sendfile on`) from one directory: the "
            f"warehouse written by `ware push ID file://DIR` ({mb(setup['warehouse_bytes'])} MB: "
            f"manifest, {setup['warehouse_packs']} packs and their indexes), `tree.tar` "
            f"({mb(setup['tar_bytes'])} MB) and `tree.tar.zst` (`zstd -T0`, level 3, "
            f"{mb(setup['tar_zst_bytes'])} MB), all made once outside the timing. Each run "
            "starts cold: page cache dropped (on the server's files too), a fresh empty store "
            "or directory, no ware daemon. The job is "
            f"`chroot ROOT /bin/sh -c '{WH_JOB}'`, its output collected by the harness. "
            "Commands:", "",
            f"- warefs: `ware --store FRESH --warehouse http://ADDR:PORT mount ID MNT && "
            "chroot MNT /bin/sh -c '…'`",
            "- warefs with a profile (issue 12): the same mount from a second warehouse "
            "(`http://ADDR:PORT/prof`: the same manifest and packs, hardlinked, plus the "
            "ware's profiles) into a fresh store, so (a) \"ware mount\" is a first run with no "
            "profile anywhere and (b) \"pushed profile\" a fresh store with the profile an "
            "earlier run on another store pushed: before the runs the job ran once on a mount of "
            "the source store, which learned the profile "
            f"({prof.get('profile_chunks', '?')} chunks, {prof.get('profile_blocks', '?')} "
            "blocks), and `ware push` put it beside the ware. (c) \"another job's profile\" "
            f"runs `{WH_JOB_C}` with (b)'s profile. The mount prefetches the profile's chunks "
            "at mount time (12 requests at once, up to 4 MiB each); the fetch counters come "
            "from `ware --json daemon status` right after the job.",
            "- tar: `curl -sS --fail http://ADDR:PORT/tree.tar | tar -x -C DIR && chroot DIR …`",
            "- tar.zst: `curl -sS --fail http://ADDR:PORT/tree.tar.zst | zstd -d -q -c | "
            "tar -x -C DIR && chroot DIR …`", ""]
    if any(not l == "loopback" for l in links):
        out += [f"The capped link: nginx in a network namespace joined to the host by a veth "
                f"pair, each end's egress limited with `tc qdisc … tbf rate "
                f"{doc.get('cap_mbit', '?')}mbit burst 64kb latency 100ms`; no added latency "
                "(this kernel has no netem), so round trips stay well under a millisecond.", ""]
    rtt_links = [x for x in links if link_kind(x) == "rtt"]
    for link in rtt_links:
        li = linfo.get(link, {})
        out += [f"The long link ({link_title(link, doc)}): nginx and an S3 warehouse (s3s-fs "
                f"{doc.get('versions', {}).get('s3s-fs', '') or ''}, started as "
                "mount-tests/kit/src/servers.rs starts it: bucket `wares`, SigV4 checked) in a network "
                "namespace joined to the host by a veth pair, each end's egress limited with "
                f"`tc qdisc … tbf rate {li.get('rate_mbit', '?')}mbit burst 1mb latency 100ms`; "
                "the clients reach each server through `benchmarks/delay-proxy` on the host, "
                f"which delays every chunk of bytes by {li.get('rtt_ms', 10) / 2:g} ms in each "
                "direction (a per-connection queue of (deliver-at, bytes): a stream keeps its "
                "bandwidth, every request/response exchange pays the round trip) and each new "
                "connection by one extra round trip (the TCP handshake); TCP slow start over "
                "the long link is not modelled. Measured through the proxy before the runs: "
                f"a first request (new connection) {li.get('first_request_ms', 0):.1f} ms, then "
                f"requests on the same connection {li.get('keepalive_request_ms_median', 0):.1f}"
                f" ms median ({li.get('keepalive_request_ms_min', 0):.1f}–"
                f"{li.get('keepalive_request_ms_max', 0):.1f}) to the first byte. The S3 bucket "
                "was filled untimed with `ware push ID s3://wares?endpoint=…` and `curl "
                "--aws-sigv4 … -T` of the same tree.tar and tree.tar.zst; the S3 downloads are "
                f"`{curl_s3('PROXY')}/tree.tar[.zst] | …` and warefs mounts with `--warehouse "
                "s3://wares?endpoint=http://PROXY&allow_http=true&region=us-east-1` (keys in "
                "`AWS_*`). s3s-fs keeps no access log: for the S3 rows, requests and bytes are "
                "counted by the proxy (bytes include the response headers).", ""]
    if not rtt_links:
        out += ["Not measured here: the warehouses issue's target (at least 10x faster than "
                "download-and-unpack with 10 ms of added round-trip latency and a 1 Gbit/s "
                "cap); run with `--rtt-ms 10`.", ""]
    out += ["Ready = the mount or download-and-extract command; job = the chroot job; total = "
            "both. Requests and MB served come from nginx's access log (`$body_bytes_sent`); "
            "\"% of image\" = MB served over the size of what that way downloads from (the "
            "whole warehouse, the .tar, the .tar.zst). \"local MB\" = `du -sb` of the fresh "
            "store (warefs, after its daemon stopped) or of the extracted tree. \"x vs warefs\" "
            "= the peer's total divided by warefs's over the same protocol (HTTP rows against "
            "the HTTP mount, S3 rows against the S3 mount): above 1 means warefs is faster.",
            ""]
    said = []
    for link in links:
        lr = res[link]
        w = lr.get("warefs")
        any_t = next(iter(t for t in WH_ALL_TOOLS if t in lr), None)
        n = lr[any_t]["runs_done"] if any_t else doc["runs"]
        title = link_title(link, doc)
        out += [f"### Cold start over {title} ({n} runs)", "",
                "| how | ready s | job s | total median s | min s | max s | requests | "
                "MB served | % of image | local MB | x vs warefs |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for t in WH_ALL_TOOLS:
            if t not in lr:
                continue
            r = lr[t]
            bw = lr.get(wh_base(t))
            out.append(
                f"| {md_cell(WH_LABEL[t])} | {r['ready_median_s']:.2f} | {r['job_median_s']:.2f} | "
                f"{r['median_s']:.2f} | {r['min_s']:.2f} | {r['max_s']:.2f} | "
                f"{r['requests']:,} | {mb(r['bytes_served'])} | "
                f"{100 * r['bytes_served'] / image[t]:.1f}% | {mb(r['local_bytes'])} | "
                f"{x_vs(r['median_s'], bw['median_s']) if bw else 'n/a'} |")
        out.append("")
        for wt in ("warefs", "warefs-s3"):
            w = lr.get(wt)
            if not w:
                continue
            proto = "S3" if wt == "warefs-s3" else "HTTP"
            peer_ts = [t for t in WH_ALL_TOOLS if t in lr and wh_base(t) == wt
                       and not t.startswith("warefs")]
            kinds = {}
            for x in w["runs"]:
                for k, v in x["http"]["by_kind"].items():
                    kinds.setdefault(k, []).append(v)
            if kinds and wt == "warefs":
                out += [f"warefs's requests by key ({title}) (median of the runs): " + "; ".join(
                    f"{k} {int(statistics.median(v_['requests'] for v_ in vs))} "
                    f"({mb(statistics.median(v_['bytes'] for v_ in vs))} MB)"
                    for k, vs in kinds.items()) + ".", ""]
            starts = [x["metadata_ms"] for x in w["runs"] if x.get("metadata_ms")]
            if starts:
                med = {k: int(statistics.median(x_[k] for x_ in starts))
                       for k in ("manifest", "side", "store")}
                out += [f"warefs's mount start ({title}, {proto}), from its daemon's log (median "
                        f"of the runs): the manifest fetched and decoded in {med['manifest']} "
                        f"ms, then the pack indexes, marker and profiles in {med['side']} ms "
                        f"(the nodes stored meanwhile, {med['store']} ms).", ""]
            peers = [(WH_LABEL[t], lr[t]["median_s"]) for t in peer_ts]
            said.append(compare(f"Cold start to a finished job, {title}, {proto}",
                                f"the lazy warefs mount ({proto})", w["median_s"], peers))
            if link_kind(link) == "rtt" and peers:
                worst = min(s_ / w["median_s"] for _, s_ in peers)
                said.append(
                    f"- Target (issue 4): at least {WH_SPEEDUP_TARGET}x faster than "
                    f"download-and-unpack at {title}, {proto}: "
                    + ("**met**" if worst >= WH_SPEEDUP_TARGET else
                       "**NOT met: warefs is behind it**")
                    + f" (the fastest peer's time over the lazy mount's: {worst:.2f}x).")
            jobs = [(WH_LABEL[t], lr[t]["job_median_s"]) for t in peer_ts]
            slow = [f"{w['job_median_s'] / s:.1f}x the job on the extracted tree via "
                    f"{name} ({s:.2f} s)" for name, s in jobs if s < w["job_median_s"]]
            if slow:
                wins = all(w["median_s"] <= s for _, s in peers)
                said.append(f"- The job alone, {title}, {proto}: **warefs is behind** — it takes "
                            f"{w['job_median_s']:.2f} s on the lazy mount (fetching as it "
                            f"reads), " + "; ".join(slow) + (
                                "; warefs is ahead on the whole only because it skips the "
                                "download and extraction." if wins else "."))
            share = w["bytes_served"] / setup["warehouse_bytes"]
            share_tree = w["bytes_served"] / doc["tree"]["logical_bytes"]
            said.append(
                f"- Bytes fetched for the cold start, {title}, {proto}: {mb(w['bytes_served'])} MB in "
                f"{w['requests']:,} requests, {100 * share:.1f}% of the warehouse "
                f"({100 * share_tree:.1f}% of the tree's {mb(doc['tree']['logical_bytes'])} MB "
                f"logical); the target of below {100 * WH_TARGET:.0f}% of the image is "
                + ("**met**." if share < WH_TARGET else "**NOT met: warefs is behind it**.")
                + (f" The fresh store holds {mb(w['local_bytes'])} MB afterwards (`du -sb`), so "
                   f"about {100 * (1 - w['local_bytes'] / w['bytes_served']):.0f}% of the bytes "
                   "served did not end up in it." if w["local_bytes"] < w["bytes_served"]
                   else ""))
    said += profile_lines(res, links, doc)
    out += img(charts, "warehouse-startup.png",
               "Cold start from an HTTP warehouse: lazy ware mount vs curl | tar -x vs "
               "curl | zstd -d | tar -x, and bytes served")
    out += ["Where warefs stands:", ""] + said + [""]
    return out


def profile_lines(res: dict, links: list[str], doc: dict) -> list[str]:
    """Issue 12's figures: (a), (b), (c) against download-and-unpack, and where the bytes came
    from (the mount's counters)."""
    said = []
    for link in links:
        lr, title = res[link], link_title(link, doc)
        for s3 in ("", "-s3"):
            peers = [lr[t]["median_s"] for t in (f"tar{s3}", f"tar.zst{s3}") if t in lr]
            if not peers:
                continue
            fastest = min(peers)
            proto = "S3" if s3 else "HTTP"
            for t, what, target in ((f"warefs{s3}", "(a) first run, no profile", 1.5),
                                    (f"warefs-noguess{s3}", "(a) without reading ahead (no "
                                     "profile; ablation)", None),
                                    (f"warefs-prof{s3}", "(b) pushed profile", 4.0),
                                    (f"warefs-prof-c{s3}", "(c) another job's profile", None)):
                r = lr.get(t)
                if not r:
                    continue
                x = fastest / r["median_s"]
                line = (f"- {what}, {title}, {proto}: {r['median_s']:.2f} s, {x:.2f}x the "
                        f"fastest download-and-unpack ({fastest:.2f} s)")
                if target and link_kind(link) == "rtt":
                    line += (f"; target (issue 12) at least {target:g}x: "
                             + ("**met**" if x >= target else "**NOT met: warefs is behind it**"))
                f = [x_["fetched"] for x_ in r["runs"] if x_.get("fetched")]
                if f:
                    tot = [g["prefetch_bytes"] + g["demand_bytes"] + g["readahead_bytes"]
                           for g in f]
                    share = statistics.median(
                        g["prefetch_bytes"] / n for g, n in zip(f, tot) if n) if any(tot) else 0
                    line += (f"; {mb(statistics.median(tot))} MB fetched, "
                             f"{100 * share:.0f}% of it by prefetch "
                             f"({int(statistics.median(g['prefetch_requests'] for g in f))} "
                             "prefetch requests, "
                             f"{int(statistics.median(g['demand_requests'] for g in f))} on "
                             "demand, reads waited "
                             f"{int(statistics.median(g['demand_wait_ms'] for g in f))} ms)")
                said.append(line + ".")
            b, floor = lr.get(f"warefs-prof{s3}"), lr.get("warefs-local")
            if b and floor:
                x = b["median_s"] / floor["median_s"]
                line = (f"- (b) against the floor, {title}, {proto}: {b['median_s']:.2f} s vs "
                        f"{floor['median_s']:.2f} s for the same job on a mount of a local "
                        f"store that holds the ware whole with its profile (cold cache): "
                        f"{x:.2f}x")
                if link_kind(link) == "rtt":
                    line += ("; target (issue 12) at most 1.3x: "
                             + ("**met**" if x <= 1.3 else "**NOT met**"))
                said.append(line + ".")
            with_, without = lr.get(f"warefs{s3}"), lr.get(f"warefs-noguess{s3}")
            if with_ and without:
                x = without["median_s"] / with_["median_s"]
                said.append(
                    f"- Ablation, {title}, {proto}: reading ahead with no profile (opened "
                    f"files whole, the small files beside them) takes (a) from "
                    f"{without['median_s']:.2f} s to "
                    f"{with_['median_s']:.2f} s ({x:.2f}x; "
                    f"{without['requests']:,} → {with_['requests']:,} requests): "
                    + ("it helps the first run." if x > 1.03 else
                       "**it does not help the first run here**."))
    return said


def chart_warehouse(plt, doc, where, out: Path) -> list[str]:
    res, setup = doc["results"], doc["results"]["_setup"]
    links = res.get("_links", [k for k in res if not k.startswith("_")])
    colors = {"warefs": WARE_C, "warefs-noguess": "#9ecae1", "warefs-noguess-s3": "#c6dbef",
              "warefs-local": "#54278f",
              "warefs-prof": "#08519c", "warefs-prof-c": "#4292c6",
              "tar": PEER_C, "tar.zst": "#c7c7c7", "warefs-s3": "#6baed6",
              "warefs-prof-s3": "#2171b5", "tar-s3": "#fdae6b", "tar.zst-s3": "#e0e0e0"}
    image = {"warefs": ("warehouse", setup["warehouse_bytes"]),
             "warefs-noguess": ("warehouse", setup["warehouse_bytes"]),
             "warefs-local": ("warehouse", setup["warehouse_bytes"]),
             "warefs-prof": ("warehouse", setup["warehouse_bytes"]),
             "warefs-prof-c": ("warehouse", setup["warehouse_bytes"]),
             "tar": (".tar", setup["tar_bytes"]), "tar.zst": (".tar.zst", setup["tar_zst_bytes"])}
    image.update({t + "-s3": v for t, v in image.items()})
    widths = [max(1.0, len([t for t in WH_ALL_TOOLS if t in res[link]]) / 3) for link in links]
    fig, axes = plt.subplots(1, len(links) + 1, figsize=(5.2 * (sum(widths) + 1), 6),
                             squeeze=False, gridspec_kw={"width_ratios": widths + [1]})
    for ax, link in zip(axes[0], links):
        lr = res[link]
        tools = [t for t in WH_ALL_TOOLS if t in lr]
        bars(ax, [f"{WH_LABEL[t]}\nready {lr[t]['ready_median_s']:.2f} s\n"
                  f"+ job {lr[t]['job_median_s']:.2f} s" for t in tools],
             [(lr[t]["median_s"], lr[t]["min_s"], lr[t]["max_s"]) for t in tools],
             [colors[t] for t in tools], "s")
        n = lr[tools[0]]["runs_done"] if tools else doc["runs"]
        ax.set_ylabel("wall-clock time to a finished job (s)")
        ax.set_title(link_title(link, doc)[0].upper() + link_title(link, doc)[1:]
                     + f", {n} runs", fontsize=10)
        if len(tools) > 3:
            ax.tick_params(axis="x", labelsize=7.5)
    ax = axes[0][-1]
    lr = res[links[0]]
    tools = [t for t in WH_ALL_TOOLS if t in lr]
    bars(ax, [f"{WH_SHORT[t]}\n{lr[t]['requests']:,} request"
              f"{'s' if lr[t]['requests'] != 1 else ''}\nof {mb(image[t][1])} MB\n"
              f"({image[t][0]})" for t in tools],
         [spread(x["http"]["bytes"] / 1e6 for x in lr[t]["runs"]) for t in tools],
         [colors[t] for t in tools], "MB", "{:,.1f}")
    ax.set_ylabel("MB served by nginx (10^6 bytes)")
    ax.set_title(f"Bytes served ({links[0]})", fontsize=10)
    fig.suptitle("Cold start from a warehouse (nginx; S3 on the long link): lazy ware mount vs "
                 "download and "
                 f"extract, then `{WH_JOB}`\n{subtitle(doc, 'cold')}", fontsize=10.5)
    fig.subplots_adjust(bottom=0.27, top=0.84, wspace=0.3)
    footer(fig, doc, where)
    save(plt, fig, out / "warehouse-startup.png")
    return ["warehouse-startup.png"]
