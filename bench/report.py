"""summary.md and PNG plots from a results.json (python3 standard library + gnuplot).

    python3 bench/report.py bench/results/<timestamp>/results.json   # rewrite both

Every figure is `median [min–max]` over the run's repetitions; `×direct` is the path's
median divided by the direct path's median measured in the same run.
"""
import json
import os
import shutil
import subprocess
import sys

ORDER = ["direct", "iperf3", "haproxy", "socat"]
HERE = os.path.dirname(os.path.abspath(__file__))
BSSL_CASE = "AES-128-GCM 16 KiB seal"  # harness.py's case of the "crypto" scenario
BASE_PATH, BASE_OF = "ringlet-base", "ringlet"  # harness.py's BENCH_BASE path and its template
# The figures compared between ringlet and ringlet-base: (scenario, metric, label, higher is
# better). Speed only: throughput, rates, latencies, times and CPU per byte.
BASE_METRICS = [
    ("bulk", "gbps", "Gbit/s", True),
    ("bulk", "cpu_s_per_gb", "CPU s/GB", False),
    ("rr", "rps", "requests/s", True),
    ("rr", "p50_us", "p50 µs", False),
    ("rr", "p99_us", "p99 µs", False),
    ("churn", "streams_per_s", "new streams/s", True),
    ("churn", "p99_us", "p99 µs", False),
    ("slow", "read_s", "read s", False),
    ("federation", "total_s", "total s", False),
    ("hol", "idle_p99_us", "idle p99 µs", False),
    ("hol", "loaded_p99_us", "loaded p99 µs", False),
]


def path_order(names):
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def fmt(v, digits=None):
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    a = abs(v)
    if digits is None:
        digits = 0 if a >= 1000 else 1 if a >= 100 else 2 if a >= 1 else 3
    return "{:,.{}f}".format(v, digits).replace(",", " ")


def fig(st, digits=None):
    """median [min–max] of a stats dict."""
    if not st:
        return "–"
    if st["n"] == 1 or st["min"] == st["max"]:
        return fmt(st["median"], digits)
    return "%s [%s–%s]" % (fmt(st["median"], digits), fmt(st["min"], digits),
                           fmt(st["max"], digits))


def ratio(st, base):
    if not st or not base or not base["median"]:
        return "–"
    return "%.2f" % (st["median"] / base["median"])


def bssl_target():
    """The bound of bench/targets.json's TLS target (baseline: the bssl path), or None."""
    try:
        with open(os.path.join(HERE, "targets.json")) as f:
            for t in json.load(f)["targets"]:
                b = t.get("baseline")
                if isinstance(b, dict) and b.get("path") == "bssl":
                    return t["op"], float(t["value"])
    except (OSError, ValueError, KeyError):
        pass
    return None


def tls_rows(res):
    """Per bulk case and TLS path: its payload rate, the plain (ws) path's, and the ratio to
    BoringSSL's single-core AES-128-GCM rate measured in the same run (None without it)."""
    A = res.get("aggregates", {})
    bssl = (((A.get("crypto") or {}).get(BSSL_CASE) or {}).get("bssl") or {}).get("bytes_per_s")
    tls = [p["name"] for p in res.get("paths", []) if p.get("tls")]
    tgt = bssl_target()
    rows = []
    for case, byp in (A.get("bulk") or {}).items():
        for p in tls:
            st = (byp.get(p) or {}).get("bytes_per_s")
            if not st:
                continue
            plain = p[:-len("-wss")] if p.endswith("-wss") else None
            pg = (byp.get(plain) or {}).get("gbps") if plain else None
            g = (byp.get(p) or {}).get("gbps")
            rows.append({
                "case": case, "path": p, "bytes_per_s": st["median"],
                "gbps": g["median"] if g else None,
                "plain_path": plain, "plain_gbps": pg["median"] if pg else None,
                "vs_plain": g["median"] / pg["median"] if g and pg and pg["median"] else None,
                "bssl_bytes_per_s": bssl["median"] if bssl else None,
                "ratio_to_bssl": st["median"] / bssl["median"] if bssl and bssl["median"]
                else None,
                "target": ("%s %g" % tgt) if tgt else None,
            })
    return rows


def base_rows(res):
    """ringlet against ringlet-base (BENCH_BASE), per scenario, case and BASE_METRICS figure
    that either path has: both medians and min/max/n, ratio = ringlet / ringlet-base
    (medians), diff_pct = (ringlet - ringlet-base) / ringlet-base's median, each path's
    spread (max - min of its repetitions) in % of ringlet-base's median, and the verdict:
    "within noise" when |ringlet - ringlet-base| is no larger than the larger spread,
    "better" or "worse" beyond it, "no spread" with fewer than 2 repetitions of either,
    "missing" when a path has no figure. [] without a ringlet-base path."""
    A = res.get("aggregates", {})
    if not any(BASE_PATH in byp for sc in A.values() for byp in sc.values()):
        return []
    rows = []
    for scen in dict.fromkeys(m[0] for m in BASE_METRICS):
        for case, byp in (A.get(scen) or {}).items():
            for _, metric, label, higher in [m for m in BASE_METRICS if m[0] == scen]:
                new = (byp.get(BASE_OF) or {}).get(metric)
                old = (byp.get(BASE_PATH) or {}).get(metric)
                if not new and not old:
                    continue
                r = {"scenario": scen, "case": case, "metric": metric, "label": label,
                     "better": "higher" if higher else "lower", BASE_OF: new,
                     BASE_PATH: old, "ratio": None, "diff_pct": None,
                     "ringlet_spread_pct": None, "base_spread_pct": None}
                if not new or not old or not old["median"]:
                    r["verdict"] = "missing"
                    rows.append(r)
                    continue
                b = old["median"]
                diff = new["median"] - b
                noise = max(new["max"] - new["min"], old["max"] - old["min"])
                r.update(ratio=new["median"] / b, diff_pct=100.0 * diff / b)
                if new["n"] >= 2:
                    r["ringlet_spread_pct"] = 100.0 * (new["max"] - new["min"]) / b
                if old["n"] >= 2:
                    r["base_spread_pct"] = 100.0 * (old["max"] - old["min"]) / b
                if min(new["n"], old["n"]) < 2:
                    r["verdict"] = "no spread"
                elif abs(diff) <= noise:
                    r["verdict"] = "within noise"
                else:
                    r["verdict"] = "better" if (diff > 0) == higher else "worse"
                rows.append(r)
    return rows


def base_section(res, w):
    """## ringlet vs ringlet-base: the BENCH_BASE comparison (base_rows), with the two
    binaries and how to read the verdicts."""
    rows = base_rows(res)
    B = res.get("base") or {}
    if not rows and not B:
        return
    M = res.get("machine", {})
    V = M.get("versions", {})
    reps = sorted({n for r in rows for k in (BASE_OF, BASE_PATH) if r.get(k)
                   for n in [r[k]["n"]]})
    w("")
    w("## ringlet vs ringlet-base")
    w("")
    w("`ringlet` is %s (%s; git %s%s); `ringlet-base` is the same ringlet built at "
      "BENCH_BASE=%s, commit %s (%s; %s, %s). Both run the same template "
      "(bench/tunnels/ringlet.conf) with the same arguments; only the binary differs. They "
      "are measured in this run, interleaved with the other paths (each repetition runs "
      "every path in turn, ringlet-base right after ringlet), %s repetition(s) each." % (
          (res.get("binaries") or {}).get("ringlet"), V.get("ringlet") or "?",
          M.get("git", {}).get("head"),
          ", with uncommitted changes" if M.get("git", {}).get("dirty") else "",
          B.get("rev", "?"), (B.get("commit") or "?")[:12], B.get("version") or "?",
          B.get("binary", "?"), "reused from an earlier run" if B.get("reused") else
          "built for this run in %s s" % B.get("build_s"),
          "/".join(str(n) for n in reps) or "no"))
    if B.get("sha256") and B.get("sha256") == B.get("ringlet_sha256"):
        w("")
        w("The two binaries are byte-identical (sha256 %s): every difference below is "
          "noise." % B["sha256"][:16])
    w("")
    w("Per figure: `median [min–max]` of each path; `ratio` = ringlet's median / "
      "ringlet-base's; `Δ` = (ringlet − ringlet-base) in %% of ringlet-base's median; "
      "`spread` = max − min of each path's repetitions, also in %% of ringlet-base's median, "
      "so the three percentages are on one scale. **within noise**: |Δ| is no larger than "
      "the larger of the two spreads; otherwise the row says whether ringlet is better or "
      "WORSE beyond it (higher is better for Gbit/s, requests/s and streams/s; lower for "
      "CPU s/GB, latencies and times). With a single repetition there is no spread and no "
      "verdict (`no spread`).%s" % (
          " The min–max range of %s repetitions is a rough measure of the noise: a "
          "difference beyond it deserves a rerun (more repetitions: BENCH_REPS=5) before "
          "it is believed." % "/".join(str(n) for n in reps) if max(reps or [0]) > 1
          else ""))
    if not rows:
        w("")
        w("No figure of ringlet-base in this run (see Failures).")
        return
    w("")
    t = Table(["scenario", "case", "figure", "ringlet", "ringlet-base", "ratio", "Δ",
               "spread ringlet", "spread base", "verdict"])
    pct = lambda v: "–" if v is None else "%+.1f%%" % v
    rng = lambda v: "–" if v is None else "%.1f%%" % v
    for r in rows:
        v = r["verdict"]
        t.add(r["scenario"], r["case"], r["label"], fig(r.get(BASE_OF)),
              fig(r.get(BASE_PATH)), "%.3f" % r["ratio"] if r["ratio"] else "–",
              pct(r["diff_pct"]), rng(r["ringlet_spread_pct"]), rng(r["base_spread_pct"]),
              {"within noise": "within noise", "better": "ringlet better, beyond noise",
               "worse": "ringlet WORSE, beyond noise"}.get(v, v))
    w(t.md())
    judged = [r for r in rows if r["verdict"] in ("within noise", "better", "worse")]
    beyond = [r for r in judged if r["verdict"] != "within noise"]
    w("")
    if not judged:
        w("No verdict: %s." % ("a single repetition per figure, so no spread to judge a "
                               "difference by" if any(r["verdict"] == "no spread"
                                                      for r in rows)
                               else "no figure was measured on both paths"))
    else:
        w("%d of %d figure(s) within noise%s%s" % (
            len(judged) - len(beyond), len(judged),
            "; beyond noise: " + "; ".join(
                "%s %s %s %s (Δ %+.1f%%, larger spread %.1f%%)" % (
                    r["scenario"], r["case"], r["label"],
                    "better" if r["verdict"] == "better" else "WORSE", r["diff_pct"],
                    max(r["ringlet_spread_pct"], r["base_spread_pct"])) for r in beyond)
            if beyond else "", "." if beyond else
            ": no difference beyond the spread between repetitions."))
    other = [r for r in rows if r["verdict"] not in ("within noise", "better", "worse")]
    if other and judged:
        w("")
        w("Not judged: %s." % "; ".join("%s %s %s (%s)" % (r["scenario"], r["case"],
                                                         r["label"], r["verdict"])
                                        for r in other))


class Table:
    def __init__(self, head):
        self.rows = [head]

    def add(self, *cells):
        self.rows.append([str(c) for c in cells])

    def md(self):
        out = ["| " + " | ".join(self.rows[0]) + " |",
               "|" + "|".join("---" if i == 0 else "--:" for i in range(len(self.rows[0]))) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in self.rows[1:]]
        return "\n".join(out)


def summary(res):
    A = res.get("aggregates", {})
    M = res.get("machine", {})
    V = M.get("versions", {})
    P = res.get("profile", {})
    reps = P.get("reps")
    out = []
    w = out.append
    w("# ringlet benchmark — %s" % res.get("started", "?"))
    w("")
    w("Machine: %s CPU(s), %s, kernel %s, %s MiB RAM, %s; open-file limit %s." % (
        M.get("nproc"), M.get("cpu_model"), M.get("kernel"), M.get("mem_mib"), M.get("os"),
        M.get("nofile_limit")))
    w("Versions: %s; %s; %s; %s; ringlet git %s%s." % (
        (V.get("ringlet") or "ringlet ?"), V.get("haproxy"), V.get("socat"), V.get("iperf3"),
        M.get("git", {}).get("head"), " (with uncommitted changes)" if M.get("git", {})
        .get("dirty") else ""))
    peers = [(p["name"], V[p["name"]]) for p in res.get("paths", [])
             if p.get("kind") == "tunnel" and V.get(p["name"])]
    if peers:  # the templates' `version` commands (bench/PEERS.md)
        w("Peer tunnels: %s%s." % ("; ".join("%s: %s" % pv for pv in peers),
                                   " (PEER_BIN=%s)" % M["peer_bin"] if M.get("peer_bin")
                                   else ""))
    if M.get("cpu_busy_pct_before") is not None:
        w("Other load: the CPUs were %s%% busy in the second before the run and %s%% in the "
          "second after it (load average at the end %s)%s." % (
              M.get("cpu_busy_pct_before"), M.get("cpu_busy_pct_after"),
              " ".join(M.get("loadavg_end") or []),
              "; other workloads shared the machine, so expect noisier figures"
              if max(M.get("cpu_busy_pct_before") or 0, M.get("cpu_busy_pct_after") or 0) > 10
              else ""))
    w("Profile: %s, %s repetition(s) per figure (scenarios 4–6: %s), paths interleaved "
      "(A B C A B C …); run took %ss." % (P.get("name"), reps, P.get("long_reps"),
                                        res.get("duration_s")))
    w("")
    w("Figures are `median [min–max]` over the repetitions; `×direct` is the path's median "
      "over the direct path's median in this same run. Everything runs on this machine's "
      "loopback: the load generator, the upstream and the path share the CPUs.")
    skipped = res.get("skipped_paths") or []
    if skipped:
        w("")
        w("Paths skipped: " + "; ".join("%s (%s)" % (s["path"], s["reason"]) for s in skipped))
    skipped = res.get("skipped_scenarios") or []
    if skipped:
        w("")
        w("Scenarios skipped: " + "; ".join("%s (%s)" % (s["scenario"], s["reason"])
                                            for s in skipped))

    base_section(res, w)

    if "idle" in A:
        w("")
        w("## " + "Idle memory (fresh processes, before any stream)")
        w("")
        t = Table(["path", "server or proxy RSS MiB", "client RSS MiB", "starts"])
        for p in path_order(A["idle"]["fresh start"]):
            m = A["idle"]["fresh start"][p]
            n = (m.get("server_rss_mib") or {}).get("n", 0)
            t.add(p, fig(m.get("server_rss_mib")), fig(m.get("client_rss_mib")), n)
        w(t.md())

    if "bulk" in A:
        w("")
        w("## 1. Bulk throughput")
        w("")
        w("%s s per measurement; up = load generator → upstream, down = upstream → load "
          "generator; xN = N parallel streams. CPU = user+system seconds of the path's "
          "processes (both tunnel ends) per GB (10⁹ bytes) carried. `iperf3` is iperf3's "
          "own client and server on direct loopback, the calibration of the load "
          "generator (its ×direct below 1 means loadgen is faster). Host = the whole "
          "machine while the bytes moved (load generator, upstream and path): its busy "
          "share of all CPUs, and its busy CPU seconds per GB. `×direct at full CPU` is "
          "direct's host CPU s/GB over the path's: the ×direct the path would reach if "
          "both kept every CPU busy, the ceiling its own cost sets on this machine. "
          "Peak RSS: each process's VmHWM while it carried the case (reset before it; "
          "server = the proxy for one-hop paths)." %
          P.get("bulk_s"))
        w("")
        t = Table(["case", "path", "Gbit/s", "×direct", "CPU s/GB", "host busy %",
                   "host CPU s/GB", "×direct at full CPU", "peak RSS MiB server / client"])
        for case in A["bulk"]:
            byp = A["bulk"][case]
            base = (byp.get("direct") or {}).get("gbps")
            hbase = (byp.get("direct") or {}).get("host_cpu_s_per_gb")
            for p in path_order(byp):
                m = byp[p]
                h = m.get("host_cpu_s_per_gb")
                pk = " / ".join(fig(m.get(k)) for k in ("server_peak_rss_mib",
                                                        "client_peak_rss_mib") if m.get(k))
                t.add(case, p, fig(m.get("gbps")), ratio(m.get("gbps"), base),
                      fig(m.get("cpu_s_per_gb")), fig(m.get("host_busy_pct")), fig(h),
                      "%.2f" % (hbase["median"] / h["median"]) if h and hbase else "–",
                      pk or "–")
        w(t.md())
        cal = []
        for case in A["bulk"]:
            d = (A["bulk"][case].get("direct") or {}).get("gbps")
            i = (A["bulk"][case].get("iperf3") or {}).get("gbps")
            if d and i:
                cal.append((case, d["median"], i["median"]))
        if cal:
            w("")
            w("Load generator calibration (direct loopback, same run): " + "; ".join(
                "%s loadgen %.1f vs iperf3 %.1f Gbit/s (%.2f×)" % (c, d, i, d / i)
                for c, d, i in cal) + ". " + (
                "loadgen matches or beats iperf3 in every case." if all(d >= i for _, d, i in cal)
                else "loadgen is SLOWER than iperf3 in: %s." % ", ".join(
                    c for c, d, i in cal if d < i)))
        w("")
        w("![throughput](throughput.png)")
        tls_section(res, w)

    if "rr" in A:
        w("")
        w("## 2. Request/response latency")
        w("")
        w("64-byte requests, %s connections each with one request in flight, %s s per "
          "measurement (the first 10%% is warm-up). Latency from sending the request to the "
          "last byte of the response, from a log-bucket histogram (every sample counted, "
          "bucket error < 1%%); µs." % (P.get("rr_conc"), P.get("rr_s")))
        w("")
        t = Table(["response", "path", "requests/s", "×direct", "p50", "p90", "p99", "p99.9",
                   "p99 ×direct"])
        for case in A["rr"]:
            byp = A["rr"][case]
            base = byp.get("direct") or {}
            for p in path_order(byp):
                m = byp[p]
                t.add(case, p, fig(m.get("rps")), ratio(m.get("rps"), base.get("rps")),
                      fig(m.get("p50_us")), fig(m.get("p90_us")), fig(m.get("p99_us")),
                      fig(m.get("p999_us")), ratio(m.get("p99_us"), base.get("p99_us")))
        w(t.md())
        w("")
        w("![latency](latency.png)")

    if "churn" in A:
        w("")
        w("## 3. Connection churn")
        w("")
        w("Each of %s workers: connect, send one 64-byte request, read the 64-byte answer "
          "and the upstream's close, close; %s s per measurement. Latency is the whole "
          "cycle, µs." % (P.get("churn_conc"), P.get("churn_s")))
        w("")
        t = Table(["path", "new streams/s", "×direct", "p50", "p99", "errors"])
        for case in A["churn"]:
            byp = A["churn"][case]
            base = (byp.get("direct") or {}).get("streams_per_s")
            for p in path_order(byp):
                m = byp[p]
                t.add(p, fig(m.get("streams_per_s")), ratio(m.get("streams_per_s"), base),
                      fig(m.get("p50_us")), fig(m.get("p99_us")), fig(m.get("errors"), 0))
        w(t.md())

    if "scale" in A:
        w("")
        w("## 4. Scale")
        w("")
        w("Open the streams (each makes one request so it exists end to end), hold them idle "
          "%s s, then %s requests/s spread over all of them for %s s. RSS is VmRSS; per "
          "stream = (RSS with the streams − RSS of the fresh process before them) / streams. "
          "socat is left out (a process per connection). haproxy holds at most what the "
          "open-file limit allows (two descriptors per stream)." % (
              P.get("scale_idle_s"), P.get("scale_rate"), P.get("scale_active_s")))
        w("")
        t = Table(["path", "streams", "server base MiB", "server KiB/idle stream",
                   "server KiB/active stream", "client base MiB", "client KiB/idle stream",
                   "client KiB/active stream", "open s", "active p99 µs"])
        for case in A["scale"]:
            byp = A["scale"][case]
            for p in path_order(byp):
                m = byp[p]
                t.add(p, fig(m.get("streams"), 0), fig(m.get("server_base_rss_mib")),
                      fig(m.get("server_kib_per_idle_stream")),
                      fig(m.get("server_kib_per_active_stream")),
                      fig(m.get("client_base_rss_mib")),
                      fig(m.get("client_kib_per_idle_stream")),
                      fig(m.get("client_kib_per_active_stream")), fig(m.get("setup_s")),
                      fig(m.get("active_p99_us")))
        w(t.md())

    if "slow" in A:
        w("")
        w("## 5. Slow consumer")
        w("")
        w("The reader asks the upstream for the bytes, stops reading for the pause while the "
          "upstream keeps sending, then reads everything and checks every byte. Peak RSS of "
          "each path process (sampled every 50 ms, and VmHWM since the process's fresh "
          "start); `paused` is the peak before reading resumed. Read time: from resuming to "
          "the last byte.")
        w("")
        t = Table(["case", "path", "server peak MiB", "server paused MiB", "client peak MiB",
                   "client paused MiB", "byte-exact", "read s", "×direct"])
        for case in A["slow"]:
            byp = A["slow"][case]
            base = (byp.get("direct") or {}).get("read_s")
            for p in path_order(byp):
                m = byp[p]
                be = m.get("byte_exact")
                t.add(case, p, fig(m.get("server_peak_rss_mib")),
                      fig(m.get("server_paused_rss_mib")), fig(m.get("client_peak_rss_mib")),
                      fig(m.get("client_paused_rss_mib")),
                      "–" if not be else ("yes" if be["min"] == 1 else "NO"),
                      fig(m.get("read_s")), ratio(m.get("read_s"), base))
        w(t.md())

    if "federation" in A:
        w("")
        w("## 6. Federation-shaped response")
        w("")
        w("`GET /federate` answered by a 200 whose body starts only after the pause (what "
          "Prometheus /federate does with a million series); seconds.")
        w("")
        t = Table(["case", "path", "time to first byte", "×direct", "total", "×direct",
                   "byte-exact"])
        for case in A["federation"]:
            byp = A["federation"][case]
            base = byp.get("direct") or {}
            for p in path_order(byp):
                m = byp[p]
                be = m.get("byte_exact")
                t.add(case, p, fig(m.get("ttfb_s"), 3), ratio(m.get("ttfb_s"),
                                                             base.get("ttfb_s")),
                      fig(m.get("total_s"), 3), ratio(m.get("total_s"), base.get("total_s")),
                      "–" if not be else ("yes" if be["min"] == 1 else "NO"))
        w(t.md())

    if "hol" in A:
        w("")
        w("## 7. Head-of-line: small requests while a bulk download shares the tunnel")
        w("")
        w("Per repetition: %s connections, each with one 64-byte request in flight answered "
          "with %s, for %s s on an idle path (`idle`), then again while one `loadgen bulk "
          "--dir down` stream runs through the same path (`loaded`; the download starts %s s "
          "before and ends %s s after the requests; its rate is `bulk Gbit/s`). ringlet runs "
          "with `--lanes 1` on the client (`hol` in its template), so the download and the "
          "requests share one WebSocket. `p99 ×idle` is loaded p99 / idle p99 of the same "
          "repetition (median over the repetitions); latencies in µs. direct and haproxy "
          "carry the download on a connection of its own: their ratio is what the download "
          "costs through CPU contention alone on this machine (the download, the load "
          "generator, the upstream and the path share the CPUs), not head-of-line blocking." % (
              P.get("hol_conc"), size_name_r(P.get("hol_resp")), P.get("hol_s"),
              P.get("hol_lead_s"), P.get("hol_tail_s")))
        w("")
        t = Table(["path", "idle p50", "idle p99", "loaded p50", "loaded p99", "p99 ×idle",
                   "p50 ×idle", "idle req/s", "loaded req/s", "bulk Gbit/s", "lanes"])
        for case in A["hol"]:
            byp = A["hol"][case]
            for p in path_order(byp):
                m = byp[p]
                t.add(p, fig(m.get("idle_p50_us")), fig(m.get("idle_p99_us")),
                      fig(m.get("loaded_p50_us")), fig(m.get("loaded_p99_us")),
                      fig(m.get("p99_ratio")), fig(m.get("p50_ratio")),
                      fig(m.get("idle_rps")), fig(m.get("loaded_rps")),
                      fig(m.get("bulk_gbps")), fig(m.get("lanes"), 0))
        w(t.md())
        spans = [s for s in res.get("samples", []) if s.get("scenario") == "hol" and
                 s.get("ok") and not (s.get("metrics") or {}).get("bulk_spanned")]
        if spans:
            w("")
            w("In %d measurement(s) the download ended before the loaded requests did "
              "(`bulk_spanned` false in results.json)." % len(spans))

    if "scaling" in A:
        w("")
        w("## 8. Shard scaling: parallel bulk streams, 1 shard vs 2")
        w("")
        variants = [p for p in res.get("paths", []) if p.get("variant_of")]
        w("%s parallel bulk streams per direction, %s s per measurement, through each "
          "configuration of the tunnel, restarted fresh for every repetition: %s. `×first "
          "config` is the configuration's median Gbit/s over that of the first one (%s). "
          "Per shard (`s0 / s1`): "
          "the server's `ringlet_shard_busy_seconds_total` (time spent handling "
          "completions, from /metrics) and `ringlet_shard_completions_total` deltas over "
          "the measurement, and the user+system CPU seconds of each shard thread "
          "(`ringlet-sN`, /proc) of the server and of the client. `working` = server shards "
          "that did at least 10%% of the server's busy time. The load generator, the "
          "upstream and both tunnel ends share this machine's %s CPU(s)." % (
              P.get("scaling_streams"), P.get("scaling_s"), "; ".join(
                  "`%s` = server `%s`, client %s" % (
                      v["name"], " ".join(v["commands"].get("server", [])[-2:]) if
                      v["commands"].get("server") else "?",
                      client_extra(v)) for v in variants) or "none",
              "`%s`" % variants[0]["name"] if variants else "none",
              M.get("nproc")))
        w("")
        first = {}
        for v in variants:
            first.setdefault(v["variant_of"], v["name"])
        base_of = {v["name"]: first[v["variant_of"]] for v in variants}
        t = Table(["case", "path", "Gbit/s", "×direct", "×first config", "CPU s/GB", "lanes",
                   "server busy s", "server completions", "server thread CPU s",
                   "client thread CPU s", "working"])
        for case in A["scaling"]:
            byp = A["scaling"][case]
            base = (byp.get("direct") or {}).get("gbps")
            for p in path_order(byp):
                m = byp[p]
                fb = (byp.get(base_of.get(p)) or {}).get("gbps") if p in base_of else None
                t.add(case, p, fig(m.get("gbps")), ratio(m.get("gbps"), base),
                      ratio(m.get("gbps"), fb) if fb else "–", fig(m.get("cpu_s_per_gb")),
                      fig(m.get("lanes"), 0), per_shard(m, "server", "busy_s", 3),
                      per_shard(m, "server", "completions", 0),
                      per_shard(m, "server", "cpu_s", 2), per_shard(m, "client", "cpu_s", 2),
                      fig(m.get("server_shards_working"), 0) if m.get("server_shards")
                      else "–")
        w(t.md())

    sockmap_section(res, w)
    fleet_section(res, w)

    failed = [s for s in res.get("samples", []) if not s.get("ok")]
    w("")
    w("## Failures")
    w("")
    if not failed:
        w("None: every measurement completed.")
    for s in failed:
        w("- %s / %s / %s rep %s: %s" % (s.get("scenario"), s.get("case"), s.get("path"),
                                        (s.get("rep", 0) or 0) + 1,
                                        str(s.get("error"))[:600].replace("\n", " ")))
    w("")
    return "\n".join(out)


def fleet_section(res, w):
    """10. N named tunnels on one server, N real ringlet clients, reloads."""
    A = (res.get("aggregates") or {}).get("fleet")
    F = res.get("fleet") or {}
    P = res.get("profile", {})
    if not A:
        if F.get("reason") and "not selected" not in F["reason"]:
            w("")
            w("## 10. Fleet")
            w("")
            w("Not measured: %s." % F["reason"])
        return
    w("")
    w("## 10. Fleet: N named tunnels on one server, N ringlet clients, a reload")
    w("")
    w("One `ringlet server --tunnels FILE` with N named tunnels (each its own token file and "
      "127.0.0.1 binding, plus one spare tunnel whose token the /connect probes use) and N "
      "real `ringlet client --lanes 1 --shards 1` processes, one per tunnel, upstream a "
      "`loadgen serve`; a cold start per repetition. `connect all s`: from the first "
      "client's start until the server's /metrics says `ringlet_tunnels{state=\"connected\"}` "
      "= N (`spawn s`: starting the N processes from the harness, part of it). `KiB/tunnel`: "
      "server VmRSS with all N connected and idle, minus before any client, over N. "
      "/connect: %s sequential WebSocket upgrades with a valid token, connect() to the 101, "
      "with 1 and with N tunnels connected. Reload: %s reload(s), each rewriting one other "
      "tunnel's token file (rename into the watched directory, then SIGHUP) while %s "
      "untouched tunnels each carry a paced stream (%s/s) to the upstream's byte counter; "
      "`reload ms` = the slowest of the repetition's reloads, from the change to the "
      "server's `tunnels file reloaded` line, `kick ms` to its `disconnecting its client` "
      "line. `lost` = bytes sent minus the upstream's count, `failed` = streams reset or "
      "broken, `resets` = the server's `ringlet_stream_resets_total{direction=\"sent\"}` "
      "delta, `stayed` = every untouched client still connected afterwards." % (
          P.get("fleet_probes"), P.get("fleet_reloads"), P.get("fleet_sample"),
          size_name_r(P.get("fleet_rate") or 0)))
    w("")
    t = Table(["case", "connect all s", "spawn s", "server RSS before MiB",
               "server RSS N MiB", "KiB/tunnel", "client RSS MiB",
               "/connect p50/p99 µs at 1", "/connect p50/p99 µs at N", "reload ms",
               "kick ms", "sample MiB", "lost", "failed", "resets", "stayed"])
    for case, byp in A.items():
        m = byp.get("ringlet") or {}
        t.add(case, fig(m.get("connect_all_s")), fig(m.get("spawn_s")),
              fig(m.get("server_rss_before_mib")), fig(m.get("server_rss_connected_mib")),
              fig(m.get("server_kib_per_tunnel")), fig(m.get("client_rss_mib")),
              "%s / %s" % (fig(m.get("connect_p50_us_1"), 0), fig(m.get("connect_p99_us_1"), 0)),
              "%s / %s" % (fig(m.get("connect_p50_us_n"), 0), fig(m.get("connect_p99_us_n"), 0)),
              fig(m.get("reload_ms")), fig(m.get("reload_disconnect_ms")),
              fig(m.get("sample_mib")), fig(m.get("sample_bytes_lost"), 0),
              fig(m.get("sample_streams_failed"), 0), fig(m.get("server_resets_sent"), 0),
              ("yes" if m["untouched_stayed"]["min"] == 1 else "NO")
              if m.get("untouched_stayed") else "–")
    w(t.md())
    whys = sorted({r.get("why") for s in res.get("samples", []) if s.get("scenario") == "fleet"
                   for r in s.get("reloads") or []} - {None})
    if whys:
        w("")
        w("Reloads were triggered by: %s (inotify sees the token file's rename before the "
          "SIGHUP arrives; the first reload applies the change)." % ", ".join(whys))


def size_name_r(n):
    if not n:
        return "?"
    for unit, name in ((1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= unit and n % unit == 0:
            return "%d %s" % (n // unit, name)
    return "%d B" % n


def per_shard(m, role, what, digits):
    """`s0 / s1 / …` medians of a scaling sample's per-shard metrics (role_sN_what)."""
    vals = []
    for n in range(64):
        st = m.get("%s_s%d_%s" % (role, n, what))
        if st is None:
            break
        vals.append(fmt(st["median"], digits))
    return " / ".join(vals) if vals else "–"


def client_extra(v):
    """The arguments a scenario-8 configuration adds to the client (or 'default')."""
    cli = v.get("commands", {}).get("client", [])
    return "`%s`" % " ".join(cli[cli.index("--lanes"):cli.index("--lanes") + 2]) \
        if "--lanes" in cli else "with its default lanes"


def sockmap_paths(res):
    """Scenario 9's steered paths: {name: the path it is the --sockmap on variant of}."""
    return {p["name"]: p.get("variant_of") for p in res.get("paths", [])
            if p.get("variant_of") and "sockmap" in (p.get("scenarios") or [])}


def sockmap_goal(res):
    """Per bulk case of scenario 9: (case, steered path, its Gbit/s over direct's, over its
    --sockmap off path's), medians of the same run."""
    A = (res.get("aggregates") or {}).get("sockmap") or {}
    out = []
    for case, byp in A.items():
        if not case.startswith("bulk "):
            continue
        d = ((byp.get("direct") or {}).get("gbps") or {}).get("median")
        for sp, off in sockmap_paths(res).items():
            g = ((byp.get(sp) or {}).get("gbps") or {}).get("median")
            o = ((byp.get(off) or {}).get("gbps") or {}).get("median")
            out.append((case, sp, g / d if g and d else None, g / o if g and o else None))
    return out


def sockmap_section(res, w):
    """9. direct, ringlet (--sockmap off) and ringlet-sockmap (on), and whether steering
    happened."""
    A = (res.get("aggregates") or {}).get("sockmap") or {}
    S = res.get("sockmap") or {}
    P = res.get("profile", {})
    if not A and not S.get("status"):
        return
    w("")
    w("## 9. Sockmap steering: --sockmap on against off and direct")
    w("")
    if S.get("status") != "ok":
        w("%s: %s" % ("Skipped" if S.get("status") == "skip" else "FAILED",
                      S.get("reason") or "?"))
        if not A:
            return
        w("")
    sp = sockmap_paths(res)
    offs = sorted(set(sp.values()))
    w("Paths, interleaved: `direct` (the load generator straight to an upstream over "
      "loopback TCP; neither end in the steering cgroup), %s (--sockmap off) and %s: the "
      "same tunnel with its template's `sockmap` arguments (--sockmap on): server and "
      "client steer their local hops (consumer -> server, client -> upstream) with eBPF "
      "sockmap, attached to the run's cgroup (`%s`), in which its server, client, its own "
      "upstream (`loadgen serve`) and the load generator run. The WebSocket hop between "
      "server and client stays TCP. %s s per measurement; rr: %s connections, each with one "
      "64-byte request in flight; latency µs. `×off` = over the same tunnel with --sockmap "
      "off, in this run." % (
          ", ".join("`%s`" % o for o in offs) or "–",
          ", ".join("`%s`" % n for n in sp) or "no steered path",
          S.get("cgroup") or "?", P.get("sockmap_s"), P.get("sockmap_rr_conc")))
    on_off = [s for s in res.get("samples", []) if s.get("scenario") == "sockmap" and
              s.get("path") in offs and (s.get("metrics") or {}).get("server_sockmap_active")]
    if on_off:
        w("")
        w("WARNING: %d measurement(s) of %s reported ringlet_sockmap_active 1 although "
          "--sockmap is off there." % (len(on_off), ", ".join(offs)))
    bulk = [c for c in A if c.startswith("bulk ")]
    rr = [c for c in A if c.startswith("rr ")]
    if bulk:
        w("")
        t = Table(["case", "path", "Gbit/s", "×direct", "×off", "CPU s/GB"])
        for case in bulk:
            byp = A[case]
            base = (byp.get("direct") or {}).get("gbps")
            for p in path_order(byp):
                m = byp[p]
                off = (byp.get(sp[p]) or {}).get("gbps") if p in sp else None
                t.add(case[len("bulk "):], p, fig(m.get("gbps")), ratio(m.get("gbps"), base),
                      ratio(m.get("gbps"), off) if off else "–", fig(m.get("cpu_s_per_gb")))
        w(t.md())
    if rr:
        w("")
        t = Table(["response", "path", "requests/s", "×direct", "×off", "p50", "p99",
                   "p99 ×direct", "p99 ×off", "CPU µs/req"])
        for case in rr:
            byp = A[case]
            base = byp.get("direct") or {}
            for p in path_order(byp):
                m = byp[p]
                off = (byp.get(sp[p]) or {}) if p in sp else {}
                t.add(case[len("rr "):], p, fig(m.get("rps")), ratio(m.get("rps"),
                                                                     base.get("rps")),
                      ratio(m.get("rps"), off.get("rps")) if off else "–",
                      fig(m.get("p50_us")), fig(m.get("p99_us")),
                      ratio(m.get("p99_us"), base.get("p99_us")),
                      ratio(m.get("p99_us"), off.get("p99_us")) if off else "–",
                      fig(m.get("cpu_us_per_req")))
        w(t.md())
    # Steering, from every measurement of the steered paths (failed ones included).
    smp = [s for s in res.get("samples", []) if s.get("scenario") == "sockmap" and
           s.get("path") in sp]
    if smp:
        w("")
        w("Steering, from the /metrics of both ends before and after each measurement "
          "(deltas): `hops` = ringlet_sockmap_hops_steered_total against the measurement's "
          "connections; `kernel share` = ringlet_sockmap_bytes_total (bytes moved straight "
          "into the peer socket, both directions of the hop) over the payload the load "
          "generator carried (bulk: its bytes, warm-up included; rr: requests × (request + "
          "response)), median [min–max] of the runs; `slow reader` = hops that started "
          "steered and moved to TCP once their reader was 4 MiB behind "
          "(ringlet_sockmap_fallbacks_total{reason=\"slow_reader\"}), per run; `other "
          "fallbacks` = hops that never were steered (every other reason), all runs. A "
          "measurement counts as a sockmap figure only when every connection's hop started "
          "steered at both ends, with bytes in the kernel and no other fallback; any other "
          "is listed under Failures.")
        w("")
        t = Table(["case", "path", "steered runs", "server hops", "client hops",
                   "server kernel share", "client kernel share", "server slow reader",
                   "client slow reader", "other fallbacks"])
        cases = []
        for s in smp:
            if (s["case"], s["path"]) not in cases:
                cases.append((s["case"], s["path"]))
        for case, p in cases:
            ss = [s for s in smp if s["case"] == case and s["path"] == p]
            conns = ss[0].get("connections")

            def col(key, ss=ss):
                vals = [(s.get("metrics") or {}).get(key) for s in ss]
                return [v for v in vals if v is not None]

            def span(vals, digits=0):
                if not vals:
                    return "–"
                lo, hi = min(vals), max(vals)
                return fmt(lo, digits) if lo == hi else "%s–%s" % (fmt(lo, digits),
                                                                    fmt(hi, digits))

            def share(role):
                v = sorted(col("%s_kernel_share" % role))
                if not v:
                    return "–"
                st = {"median": v[len(v) // 2] if len(v) % 2 else
                      (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2, "min": v[0], "max": v[-1],
                      "n": len(v)}
                return fig(st, 2)

            t.add(case, p, "%d of %d" % (sum(1 for s in ss if s.get("steered")), len(ss)),
                  "%s/%s" % (span(col("server_hops_steered")), conns),
                  "%s/%s" % (span(col("client_hops_steered")), conns),
                  share("server"), share("client"), span(col("server_slow_reader")),
                  span(col("client_slow_reader")),
                  fmt(sum(col("server_fallbacks")) + sum(col("client_fallbacks")), 0))
        w(t.md())
    goal = [g for g in sockmap_goal(res) if g[2] is not None]
    if goal:
        met = [g for g in goal if g[2] >= 1.0]
        w("")
        w("Goal (bench/targets.json): the whole tunnel with steering at least as fast as "
          "direct loopback TCP in bulk (×direct >= 1.0): %s, %d of %d bulk case(s) reach it "
          "(×direct %s; ×off %s)." % (
              "met" if len(met) == len(goal) else "NOT met", len(met), len(goal),
              ", ".join("%s %.2f" % (c[len("bulk "):], r) for c, _, r, _ in goal),
              ", ".join("%s %s" % (c[len("bulk "):], "%.2f" % o if o else "–")
                        for c, _, _, o in goal)))
    if (A and any(c.startswith("bulk ") for c in A)) or rr:
        w("")
        w("![sockmap](sockmap.png)")


def tls_section(res, w):
    """ringlet-wss next to ringlet (ws) and BoringSSL's own AES-128-GCM speed."""
    rows = tls_rows(res)
    B = res.get("bssl") or {}
    A = res.get("aggregates", {})
    bst = (((A.get("crypto") or {}).get(BSSL_CASE) or {}).get("bssl") or {})
    if not rows and not bst:
        return
    w("")
    w("### TLS: wss against ws and BoringSSL's AES-128-GCM")
    w("")
    tgt = bssl_target()
    if bst.get("mb_per_s"):
        w("`bssl speed` (%s, %s): AES-128-GCM seal of 16 KiB records (a full TLS record) "
          "on one thread, %s MB/s (%s Gbit/s), measured %d time(s) in this run, each "
          "between bulk measurements while the paths were idle. ringlet links %s." % (
              B.get("package") or "BoringSSL", B.get("tool"), fig(bst["mb_per_s"], 0),
              fig(bst.get("gbps")), bst["mb_per_s"]["n"],
              "the same libcrypto (%s)" % B.get("libcrypto")
              if B.get("libcrypto") and B.get("libcrypto") == B.get("ringlet_libcrypto")
              else "%s (bssl: %s)" % (B.get("ringlet_libcrypto"), B.get("libcrypto"))))
    else:
        w("BoringSSL's speed was not measured in this run (%s), so there is no ratio to it."
          % (B.get("reason") or "no bssl figure"))
    w("")
    w("`ratio` = the TLS path's payload bytes/s (what the load generator carried, as in the "
      "Gbit/s column) / bssl's AES-128-GCM bytes/s%s. Both tunnel ends run on this "
      "machine's CPUs with the load generator and the upstream: each payload byte is "
      "sealed by one end and opened by the other." % (
          "; target (bench/targets.json) %s %g" % tgt if tgt else ""))
    w("")
    t = Table(["case", "ws path Gbit/s", "wss path Gbit/s", "wss/ws", "wss MB/s",
               "bssl AES-128-GCM MB/s", "ratio"])
    for r in rows:
        t.add("%s (%s)" % (r["case"], r["path"]),
              fmt(r["plain_gbps"]) if r["plain_gbps"] is not None else "–",
              fmt(r["gbps"]) if r["gbps"] is not None else "–",
              "%.2f" % r["vs_plain"] if r["vs_plain"] is not None else "–",
              fmt(r["bytes_per_s"] / 1e6, 0),
              fmt(r["bssl_bytes_per_s"] / 1e6, 0) if r["bssl_bytes_per_s"] else "–",
              ("%.3f" % r["ratio_to_bssl"] + (" (short)" if tgt and r["ratio_to_bssl"] <
                                                 tgt[1] and tgt[0].startswith(">") else ""))
              if r["ratio_to_bssl"] is not None else "–")
    w(t.md())


def gnuplot(outdir, name, script):
    if not shutil.which("gnuplot"):
        return False
    gp = os.path.join(outdir, "work", name + ".gp")
    os.makedirs(os.path.dirname(gp), exist_ok=True)
    with open(gp, "w") as f:
        f.write(script)
    try:
        r = subprocess.run(["gnuplot", gp], cwd=outdir, capture_output=True, text=True,
                           timeout=60)
    except subprocess.TimeoutExpired:
        return False
    if r.returncode != 0:
        sys.stderr.write("bench: gnuplot %s: %s\n" % (name, r.stderr.strip()[-400:]))
    return r.returncode == 0


def q(s):
    return '"%s"' % str(s).replace('"', "'")


def plots(outdir, res):
    A = res.get("aggregates", {})
    made = []
    work = os.path.join(outdir, "work")
    os.makedirs(work, exist_ok=True)
    if "bulk" in A:
        cases = list(A["bulk"])
        paths = path_order({p for c in cases for p in A["bulk"][c]})
        dat = os.path.join(work, "throughput.dat")
        with open(dat, "w") as f:
            for c in cases:
                row = [q(c)]
                for p in paths:
                    st = A["bulk"][c].get(p, {}).get("gbps")
                    row += ([st["median"], st["min"], st["max"]] if st else ["NaN"] * 3)
                f.write(" ".join(str(x) for x in row) + "\n")
        cols = ", ".join("%s using %d:%d:%d%s title %s" % (
            q("work/throughput.dat") if i == 0 else "''", 2 + 3 * i, 3 + 3 * i, 4 + 3 * i,
            ":xtic(1)" if i == 0 else "", q(p)) for i, p in enumerate(paths))
        # BoringSSL's single-core AES-128-GCM rate (same run), the TLS paths' yardstick.
        top = max([st["max"] for c in cases for m in A["bulk"][c].values()
                   for st in [m.get("gbps")] if st] or [1])
        bst = ((((A.get("crypto") or {}).get(BSSL_CASE) or {}).get("bssl") or {})
               .get("gbps"))
        extra = ""
        if bst:
            b = bst["median"]
            top = max(top, b)
            extra = ("set arrow from graph 0, first %g to graph 1, first %g nohead dt 2 lw 2 "
                     "lc rgb 'black'\nset label %s at graph 0.01, first %g offset 0,0.7\n" % (
                         b, b, q("bssl AES-128-GCM, 1 core: %.1f Gbit/s" % b), b))
        if gnuplot(outdir, "throughput", """set terminal pngcairo size 1100,560 noenhanced
set output 'throughput.png'
set title 'Bulk throughput (median, bars: min-max)'
set ylabel 'Gbit/s'
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.8 border -1
set yrange [0:%g]
set key outside right top
set grid ytics
%splot %s
""" % (top * 1.15, extra, cols)):
            made.append("throughput.png")
    if "rr" in A:
        sizes = list(A["rr"])
        paths = path_order({p for c in sizes for p in A["rr"][c]})
        qs = [("p50", "p50_us"), ("p90", "p90_us"), ("p99", "p99_us"), ("p99.9", "p999_us")]
        panels = []
        for si, size in enumerate(sizes):
            dat = os.path.join(work, "latency%d.dat" % si)
            with open(dat, "w") as f:
                for qi, (ql, key) in enumerate(qs):
                    row = [qi, q(ql)]
                    for p in paths:
                        st = A["rr"][size].get(p, {}).get(key)
                        row.append(st["median"] if st else "NaN")
                    f.write(" ".join(str(x) for x in row) + "\n")
            lines = ", ".join("%s using 1:%d:xtic(2) with linespoints lw 2 title %s" % (
                q("work/latency%d.dat" % si) if i == 0 else "''", 3 + i, q(p))
                for i, p in enumerate(paths))
            panels.append("set title %s\nplot %s\n" % (q("response " + size), lines))
        if gnuplot(outdir, "latency", """set terminal pngcairo size %d,520 noenhanced
set output 'latency.png'
set multiplot layout 1,%d title 'Request latency percentiles (median of repetitions)'
set logscale y
set ylabel 'microseconds'
set xrange [-0.3:3.3]
set grid ytics
set key top left
%s
unset multiplot
""" % (420 * len(sizes), len(sizes), "".join(panels))):
            made.append("latency.png")
    if "sockmap" in A:
        if sockmap_plot(outdir, work, A["sockmap"]):
            made.append("sockmap.png")
    return made


def sockmap_plot(outdir, work, A):
    """Scenario 9: Gbit/s per bulk case and requests/s per response size, one bar per path
    (median, bars min-max)."""
    panels = []
    for i, (prefix, key, title, ylabel) in enumerate((
            ("bulk ", "gbps", "Bulk throughput", "Gbit/s"),
            ("rr ", "rps", "Request rate", "requests/s"))):
        cases = [c for c in A if c.startswith(prefix)]
        if not cases:
            continue
        paths = path_order({p for c in cases for p in A[c]})
        dat = os.path.join(work, "sockmap%d.dat" % i)
        with open(dat, "w") as f:
            for c in cases:
                row = [q(c[len(prefix):])]
                for p in paths:
                    st = A[c].get(p, {}).get(key)
                    row += ([st["median"], st["min"], st["max"]] if st else ["NaN"] * 3)
                f.write(" ".join(str(x) for x in row) + "\n")
        top = max([st["max"] for c in cases for m in A[c].values()
                   for st in [m.get(key)] if st] or [1])
        cols = ", ".join("%s using %d:%d:%d%s title %s" % (
            q("work/sockmap%d.dat" % i) if j == 0 else "''", 2 + 3 * j, 3 + 3 * j, 4 + 3 * j,
            ":xtic(1)" if j == 0 else "", q(p)) for j, p in enumerate(paths))
        panels.append("set title %s\nset ylabel %s\nset yrange [0:%g]\nplot %s\n" % (
            q(title + " (median, bars: min-max)"), q(ylabel), top * 1.15, cols))
    if not panels:
        return False
    return gnuplot(outdir, "sockmap", """set terminal pngcairo size %d,520 noenhanced
set output 'sockmap.png'
set multiplot layout 1,%d title 'Sockmap steering: direct, --sockmap off, --sockmap on'
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.8 border -1
set key below
set grid ytics
%s
unset multiplot
""" % (560 * len(panels), len(panels), "".join(panels)))


def write_all(outdir, res):
    made = plots(outdir, res)
    text = summary(res)
    if not made:
        text += "\n(gnuplot unavailable or failed: no plots)\n"
    with open(os.path.join(outdir, "summary.md"), "w") as f:
        f.write(text)
    return made


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: report.py results.json")
    with open(sys.argv[1]) as f:
        r = json.load(f)
    write_all(os.path.dirname(os.path.abspath(sys.argv[1])), r)
