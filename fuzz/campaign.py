#!/usr/bin/env python3
"""The fuzz campaign (`make fuzz-campaign`; docs/RELIABILITY.md, "Fuzz campaign").

For every libFuzzer driver given (build-fuzz/<name>), one driver at a time:
  1. fuzz: <dir>/corpus/<name> (grown; seeded by reading fuzz/corpus/<name> too) for --runs
     executions, split over --jobs parallel jobs; crashes land in <dir>/crashes/<name>/;
  2. minimise: -merge=1 of the grown corpus and the seeds into <dir>/min/<name>;
  3. coverage: replay <dir>/min/<name> through build-fuzz-cov/<name> (clang source-based
     coverage, -runs=0), llvm-profdata merge, then llvm-cov: a text report per driver
     (<dir>/coverage/<name>.txt) and an HTML report (<dir>/coverage/<name>/index.html).
The code under test, for the table's coverage columns: the .c file of every project header
the driver includes ("proto/ws.h" -> proto/ws.c) and the .c files the Makefile's
FUZZ_EXTRA_<name> links. The summary table goes to stdout, <dir>/summary.md and (--record)
between the fuzz-campaign markers in docs/RELIABILITY.md. Exit status 1 if any driver
crashed (its inputs are kept and listed), 0 otherwise. Python 3 standard library only.
"""
import argparse
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN = "<!-- fuzz-campaign:begin (written by fuzz/campaign.py) -->"
END = "<!-- fuzz-campaign:end -->"


def log(msg):
    print(msg, flush=True)


def under_test(name):
    """The project sources a driver exercises (see the module comment)."""
    out = []
    src = os.path.join(REPO, "fuzz", name + ".c")
    with open(src if os.path.isfile(src) else os.devnull) as f:
        for inc in re.findall(r'^#include "([^"]+)\.h"', f.read(), re.M):
            if os.path.isfile(os.path.join(REPO, inc + ".c")):
                out.append(inc + ".c")
    with open(os.path.join(REPO, "Makefile")) as f:
        m = re.search(r"^FUZZ_EXTRA_%s\s*:?=(.*)$" % re.escape(name), f.read(), re.M)
    if m:
        out += [w for w in m.group(1).split() if w.endswith(".c")]
    return sorted(set(out))


def stats(logs):
    """Executions, exec/s, peak RSS, the last cov:/ft: figures and the longest job's seconds
    from libFuzzer logs (one per job); a job that died before its final stats counts its
    last status line."""
    ex = rate = rss = cov = ft = secs = 0
    for path in logs:
        try:
            text = open(path, errors="replace").read()
        except OSError:
            continue
        m = re.search(r"stat::number_of_executed_units: (\d+)", text)
        if m:
            ex += int(m.group(1))
        else:
            st = re.findall(r"^#(\d+)\s", text, re.M)
            ex += int(st[-1]) if st else 0
        m = re.search(r"stat::average_exec_per_sec:\s+(\d+)", text)
        rate += int(m.group(1)) if m else 0
        m = re.search(r"^Done \d+ runs in (\d+) second", text, re.M)
        secs = max(secs, int(m.group(1)) if m else 0)
        m = re.search(r"stat::peak_rss_mb:\s+(\d+)", text)
        rss = max(rss, int(m.group(1)) if m else 0)
        c = re.findall(r" cov: (\d+) ft: (\d+)", text)
        if c:
            cov, ft = max(cov, int(c[-1][0])), max(ft, int(c[-1][1]))
    return ex, rate, rss, cov, ft, secs


def corpus_size(d):
    files = [f for f in glob.glob(os.path.join(d, "*")) if os.path.isfile(f)]
    return len(files), sum(os.path.getsize(f) for f in files)


def fuzz(binary, name, a):
    """Step 1; returns (stats, seconds, crash inputs)."""
    corpus = os.path.join(a.dir, "corpus", name)
    crashes = os.path.join(a.dir, "crashes", name)
    logdir = os.path.join(a.dir, "logs", name)
    for d in (corpus, crashes, logdir):
        os.makedirs(d, exist_ok=True)
    for old in glob.glob(os.path.join(logdir, "*.log")):
        os.remove(old)
    seeds = os.path.join(REPO, "fuzz", "corpus", name)
    dirs = [corpus] + ([seeds] if os.path.isdir(seeds) else [])
    argv = [os.path.abspath(binary), "-print_final_stats=1", "-timeout=25",
            "-artifact_prefix=%s/" % os.path.abspath(crashes)]
    if a.jobs > 1:
        # -runs counts per job; each job writes fuzz-<i>.log in the working directory.
        argv += ["-runs=%d" % -(-a.runs // a.jobs), "-jobs=%d" % a.jobs,
                 "-workers=%d" % a.jobs]
    else:
        argv += ["-runs=%d" % a.runs]
    argv += [os.path.abspath(d) for d in dirs]
    t0 = time.monotonic()
    with open(os.path.join(logdir, "main.log"), "ab") as out:
        rc = subprocess.call(argv, cwd=logdir, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
    secs = time.monotonic() - t0
    found = sorted(glob.glob(os.path.join(crashes, "*")))
    if rc != 0 and not found:
        found = ["(exit %d, no artifact: see %s)" % (rc, logdir)]
    logs = glob.glob(os.path.join(logdir, "fuzz-*.log" if a.jobs > 1 else "main.log"))
    return stats(logs), secs, found


def from_logs(name, a):
    """A completed run's figures from its logs alone (a run by an earlier version of this
    script, which kept no result.json); {} if the logs show no completed run."""
    d = os.path.join(a.dir, "logs", name)
    jobs = glob.glob(os.path.join(d, "fuzz-*.log"))
    ex, rate, _, cov, ft, secs = stats(jobs or [os.path.join(d, "main.log")])
    crashes = glob.glob(os.path.join(a.dir, "crashes", name, "*"))
    if not secs or crashes:
        return {}
    return dict(ex=ex, rate=rate, cov=cov, ft=ft, secs=secs, crashes=[],
                jobs=max(1, len(jobs)))


def minimise(binary, name, a):
    mind = os.path.join(a.dir, "min", name)
    shutil.rmtree(mind, ignore_errors=True)
    os.makedirs(mind)
    seeds = os.path.join(REPO, "fuzz", "corpus", name)
    srcs = [os.path.join(a.dir, "corpus", name)] + ([seeds] if os.path.isdir(seeds) else [])
    with open(os.path.join(a.dir, "logs", name, "merge.log"), "wb") as out:
        subprocess.call([binary, "-merge=1", "-timeout=25", mind] + srcs, stdout=out,
                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return mind


def coverage(name, corpus, a):
    """Step 3; returns the llvm-cov summary totals of the code under test (or None)."""
    cov_bin = os.path.join(REPO, "build-fuzz-cov", name)
    if not os.access(cov_bin, os.X_OK):
        log("           no coverage build %s: coverage skipped" % cov_bin)
        return None
    outd = os.path.join(a.dir, "coverage")
    prof = os.path.join(outd, "raw", name)
    shutil.rmtree(prof, ignore_errors=True)
    os.makedirs(prof)
    env = dict(os.environ, LLVM_PROFILE_FILE=os.path.join(prof, "%p.profraw"))
    with open(os.path.join(a.dir, "logs", name, "replay.log"), "wb") as out:
        subprocess.call([cov_bin, "-runs=0", corpus], env=env, stdout=out,
                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    raws = glob.glob(os.path.join(prof, "*.profraw"))
    if not raws:
        return None
    pd = os.path.join(outd, name + ".profdata")
    subprocess.check_call(["llvm-profdata", "merge", "-sparse", "-o", pd] + raws)
    common = [cov_bin, "-instr-profile=" + pd, "-ignore-filename-regex=llhttp"]
    with open(os.path.join(outd, name + ".txt"), "w") as out:
        subprocess.call(["llvm-cov", "report", "-show-region-summary=false"] + common,
                        stdout=out, cwd=REPO)
    html = os.path.join(outd, name)
    shutil.rmtree(html, ignore_errors=True)
    subprocess.call(["llvm-cov", "show", "-format=html", "-show-branches=count",
                     "-output-dir=" + html] + common, cwd=REPO)
    files = under_test(name)
    exp = subprocess.run(["llvm-cov", "export", "-summary-only"] + common + files,
                         stdout=subprocess.PIPE, cwd=REPO, check=True)
    return json.loads(exp.stdout)["data"][0]["totals"], files


def pct(t, key):
    return "%.1f %% (%d/%d)" % (t[key]["percent"], t[key]["covered"], t[key]["count"])


def table(rows, a, started):
    head = ("Campaign of %s on %s (%s, %d CPUs, shared with other work), %s executions "
            "per driver, nice -n 10; git %s.\n\n" %
            (started, platform.node() or "?", platform.machine(), os.cpu_count() or 0,
             "{:,}".format(a.runs), git_rev()))
    lines = ["| driver | executions | exec/s | time | corpus (grown → with seeds, minimised) | "
             "edges (cov/ft) | lines | branches | code under test |",
             "|---|---:|---:|---:|---|---|---|---|---|"]
    for r in rows:
        t = r["totals"]
        lines.append("| %s | %s | %s | %s | %d files, %d KiB → %d files, %d KiB | %d / %d "
                     "| %s | %s | %s |" % (
                         r["name"], "{:,}".format(r["ex"]), "{:,}".format(r["rate"]),
                         "%d m %02d s, %d job%s" % (int(r["secs"]) // 60, int(r["secs"]) % 60,
                                                    r["jobs"], "s" if r["jobs"] > 1 else ""),
                         r["grown"][0],
                         r["grown"][1] // 1024, r["min"][0], r["min"][1] // 1024, r["cov"],
                         r["ft"], pct(t, "lines") if t else "-",
                         pct(t, "branches") if t else "-", ", ".join(r["files"]) or "-"))
    crashes = [(r["name"], c) for r in rows for c in r["crashes"]]
    tail = "\nCrashes: %s.\n" % ("none" if not crashes else "; ".join(
        "%s: %s" % (n, show(c) if c.startswith("/") else c)
        for n, c in crashes))
    return head + "\n".join(lines) + "\n" + tail


def show(path):
    """path relative to the repository when inside it."""
    rel = os.path.relpath(path, REPO)
    return path if rel.startswith("..") else rel


def git_rev():
    try:
        return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO,
                              stdout=subprocess.PIPE, check=True).stdout.decode().strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def record(path, text):
    """Replace the text between the markers in path (the markers are added at the end of
    the "## Fuzz campaign" section the first time)."""
    with open(path) as f:
        doc = f.read()
    block = BEGIN + "\n" + text + END
    if BEGIN in doc and END in doc:
        doc = doc[:doc.index(BEGIN)] + block + doc[doc.index(END) + len(END):]
    else:
        m = re.search(r"^## Fuzz campaign\n(.*?)(?=^## |\Z)", doc, re.M | re.S)
        if not m:
            doc += "\n## Fuzz campaign\n\n" + block + "\n"
        else:
            doc = doc[:m.end()].rstrip("\n") + "\n\n" + block + "\n\n" + doc[m.end():]
    with open(path, "w") as f:
        f.write(doc.rstrip("\n") + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10_000_000)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--dir", default="build-fuzz/campaign")
    ap.add_argument("--record", default="", help="document to write the table into")
    ap.add_argument("--only", default="", help="comma-separated driver names")
    ap.add_argument("--resume", action="store_true",
                    help="a driver whose last run in --dir reached --runs cleanly is not "
                         "fuzzed again (its recorded figures are used)")
    ap.add_argument("drivers", nargs="+", help="build-fuzz/<name> binaries")
    a = ap.parse_args()
    a.dir = os.path.abspath(a.dir)
    only = set(filter(None, a.only.split(",")))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = []
    for binary in a.drivers:
        name = os.path.basename(binary)
        if only and name not in only:
            continue
        res = os.path.join(a.dir, "logs", name, "result.json")
        done = json.load(open(res)) if a.resume and os.path.isfile(res) else {}
        if a.resume and not done:
            done = from_logs(name, a)
        if done.get("ex", 0) >= a.runs and not done.get("crashes"):
            log("  CAMPAIGN %s: done before (%s executions)" % (name, "{:,}".format(done["ex"])))
            ex, rate, cov, ft, secs, crashes, jobs = (done[k] for k in (
                "ex", "rate", "cov", "ft", "secs", "crashes", "jobs"))
        else:
            log("  CAMPAIGN %s: %s executions" % (name, "{:,}".format(a.runs)))
            (ex, rate, _, cov, ft, _), secs, crashes = fuzz(binary, name, a)
            if not rate and secs > 0:
                rate = int(ex / secs)
            jobs = a.jobs
            with open(res, "w") as f:
                json.dump(dict(ex=ex, rate=rate, cov=cov, ft=ft, secs=secs, crashes=crashes,
                               jobs=jobs), f)
        for c in crashes:
            log("  CRASH    %s: %s" % (name, c))
        mind = minimise(binary, name, a)
        got = coverage(name, mind, a)
        totals, files = got if got else (None, under_test(name))
        rows.append(dict(name=name, ex=ex, rate=rate, secs=secs, cov=cov, ft=ft, jobs=jobs,
                         grown=corpus_size(os.path.join(a.dir, "corpus", name)),
                         min=corpus_size(mind), totals=totals, files=files,
                         crashes=crashes))
        log("           %s executions in %.0f s, lines %s" %
            ("{:,}".format(ex), secs, pct(totals, "lines") if totals else "-"))
    text = table(rows, a, started)
    text += ("\nReports: %s/coverage/<driver>.txt (llvm-cov report, every linked project "
             "file) and %s/coverage/<driver>/index.html.\n" %
             (show(a.dir), show(a.dir)))
    with open(os.path.join(a.dir, "summary.md"), "w") as f:
        f.write(text)
    log("\n" + text)
    if a.record:
        record(os.path.join(REPO, a.record), text)
        log("fuzz-campaign: table written into %s" % a.record)
    short = [r["name"] for r in rows if r["ex"] < a.runs]
    if short:
        log("fuzz-campaign: fewer than %d executions: %s" % (a.runs, ", ".join(short)))
    return 1 if any(r["crashes"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
