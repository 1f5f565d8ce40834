#!/bin/bash
# Smoke test of the benchmark harness (bench/run.sh): a seconds-long run (BENCH_TINY=1: one
# repetition, tiny sizes, scenarios 1-7 and 10, the fleet at 20 tunnels; 8, shard scaling,
# and 9, sockmap, are left out) over direct, socat
# and ringlet, plus ringlet-wss
# (TLS; bulk and federation only in this profile) and a short `bssl speed` when the tool is
# installed, written to a temp dir. Checks that results.json and summary.md are produced and
# parse, that every measurement ran and that ringlet (ws and wss) carried every byte exactly,
# that the BoringSSL baseline is either measured (and the wss ratio reported) or recorded as
# unavailable with a reason, and that bench/check can judge the run. It never asserts a speed: timings are bench/'s business, not the tests'.
# Exit 77 (skip) with a reason when a binary or tool it needs is missing.
set -u
cd "$(dirname "$0")/../.." || exit 1

skip() {
	echo "$1"
	exit 77
}
fail() {
	echo "FAIL: $1"
	[ -f "${out:-}/run.log" ] && tail -n 40 "$out/run.log"
	exit 1
}

: "${RINGLET_BIN:=$(pwd)/${RINGLET_BUILD:-build}/ringlet}"
[ -x "$RINGLET_BIN" ] || skip "ringlet binary not found at $RINGLET_BIN (build it first)"
LOADGEN_BIN=$(dirname "$RINGLET_BIN")/bench/loadgen
[ -x "$LOADGEN_BIN" ] || skip "load generator not built at $LOADGEN_BIN (make its bench binaries)"
command -v python3 >/dev/null 2>&1 || skip "python3 not found"

out=$(mktemp -d /tmp/ringlet-bench-smoke.XXXXXX) || fail "mktemp"
trap 'rm -rf "$out"' EXIT

BENCH_TINY=1 BENCH_OUT="$out" BENCH_PATHS=direct,socat,ringlet,ringlet-wss BENCH_SCENARIOS=1,2,3,4,5,6,7,10 \
	RINGLET_BIN="$RINGLET_BIN" LOADGEN_BIN="$LOADGEN_BIN" \
	timeout -k 5 240 sh bench/run.sh >"$out/run.log" 2>&1
rc=$?
[ "$rc" -eq 77 ] && skip "bench/run.sh cannot run here: $(tail -n 1 "$out/run.log")"
[ "$rc" -eq 0 ] || fail "bench/run.sh exited $rc"

run=$(ls -d "$out"/*/ 2>/dev/null | head -n 1)
[ -n "$run" ] || fail "no results directory under $out"
for f in results.json summary.md; do
	[ -s "$run/$f" ] || fail "$f missing or empty"
done

python3 - "$run" <<'PY' || fail "results.json or summary.md do not hold what they should"
import json, os, sys
run = sys.argv[1]
res = json.load(open(os.path.join(run, "results.json")))
for key in ("machine", "profile", "paths", "samples", "aggregates"):
    assert key in res, "results.json has no %s" % key
m = res["machine"]
for key in ("nproc", "cpu_model", "kernel", "versions"):
    assert m.get(key) is not None, "machine info lacks %s" % key
assert m["versions"].get("ringlet"), "no ringlet version"
paths = {p["name"] for p in res["paths"]}
assert {"direct", "ringlet", "ringlet-wss"} <= paths, "paths: %s" % sorted(paths)
bad = [s for s in res["samples"] if not s.get("ok")]
assert not bad, "failed measurements: %s" % json.dumps(bad)[:2000]
agg = res["aggregates"]
for scen in ("bulk", "rr", "churn", "scale", "slow", "federation", "hol"):
    assert scen in agg, "no %s figures" % scen
    for case, byp in agg[scen].items():
        for p in ("direct", "ringlet"):
            assert p in byp, "%s/%s: no figures for %s" % (scen, case, p)
for scen in ("slow", "federation"):
    for case, byp in agg[scen].items():
        st = byp["ringlet"]["byte_exact"]
        assert st["min"] == 1, "%s/%s: ringlet did not carry the bytes exactly" % (scen, case)
for scen in ("bulk", "federation"):  # ringlet-wss's scenarios in the tiny profile
    for case, byp in agg[scen].items():
        assert "ringlet-wss" in byp, "%s/%s: no figures for ringlet-wss" % (scen, case)
for case, byp in agg["federation"].items():
    assert byp["ringlet-wss"]["byte_exact"]["min"] == 1, \
        "%s: ringlet-wss did not carry the bytes exactly" % case
for case, byp in agg["bulk"].items():
    assert byp["ringlet-wss"]["bytes_per_s"]["median"] > 0, "%s: no wss payload rate" % case
fl = agg["fleet"]["20 tunnels"]["ringlet"]  # 10: 20 tunnels, 20 ringlet clients, reloads
for k in ("connect_all_s", "server_kib_per_tunnel", "connect_p50_us_1", "connect_p99_us_n",
          "reload_ms", "reload_disconnect_ms", "sample_mib"):
    assert fl[k]["median"] > 0, "fleet: %s = %s" % (k, fl.get(k))
for k in ("sample_bytes_lost", "sample_streams_failed", "server_resets_sent"):
    assert fl[k]["max"] == 0, "fleet: %s = %s" % (k, fl[k])
assert fl["untouched_stayed"]["min"] == 1, "fleet: an untouched client went away"
assert set(agg["fleet"]["20 tunnels"]) == {"ringlet"}, "fleet: a path other than ringlet"
b = res.get("bssl")
assert isinstance(b, dict) and "available" in b, "results.json says nothing about bssl"
summary = open(os.path.join(run, "summary.md")).read()
if b["available"]:
    st = agg["crypto"]["AES-128-GCM 16 KiB seal"]["bssl"]["bytes_per_s"]
    assert st["median"] > 0, "bssl figure %s" % st
    rows = res.get("tls_vs_bssl") or []
    assert rows and all(r["ratio_to_bssl"] > 0 for r in rows), "no wss/bssl ratio: %s" % rows
    assert "bssl AES-128-GCM MB/s" in summary, "summary.md has no wss/bssl table"
else:
    assert b.get("reason"), "bssl unavailable without a reason"
    assert not agg.get("crypto"), "a bssl figure although it is unavailable"
for case, byp in agg["hol"].items():  # 7: idle and loaded latency, the ratio, one lane
    for p in ("direct", "ringlet"):
        for k in ("idle_p99_us", "loaded_p99_us", "p99_ratio", "bulk_gbps"):
            assert byp[p][k]["median"] > 0, "hol/%s: %s %s = %s" % (case, p, k, byp[p].get(k))
    assert byp["ringlet"]["lanes"]["median"] == 1, "hol: ringlet not on one lane"
for s in res["samples"]:
    if s.get("scenario") in ("bulk", "rr", "churn", "scale", "slow", "federation", "hol"):
        assert s.get("cmd"), "sample without its command: %s" % s
for head in ("## 1. Bulk throughput", "## 2. Request/response latency", "## 3. Connection churn",
             "## 4. Scale", "## 5. Slow consumer", "## 6. Federation-shaped response",
             "## 7. Head-of-line", "## 10. Fleet"):
    assert head in summary, "summary.md lacks %r" % head
assert "| ringlet |" in summary or "| ringlet" in summary, "summary.md has no ringlet row"
# BENCH_BASE (ringlet against a git revision): not asked for here, so neither the path nor the
# section; the section's arithmetic is checked on made-up figures (no build of a revision).
assert res.get("base") is None and res.get("base_comparison") == [], "a ringlet-base result"
assert "## ringlet vs ringlet-base" not in summary, "a ringlet-base section without BENCH_BASE"
sys.path.insert(0, "bench")
sys.dont_write_bytecode = True
import report
st = lambda med, lo, hi, n=3: {"median": med, "min": lo, "max": hi, "n": n}
fake = {"aggregates": {
    "bulk": {"up x1": {"ringlet": {"gbps": st(10.0, 9.0, 11.0)},
                       "ringlet-base": {"gbps": st(10.5, 10.0, 10.8)}},
             "down x1": {"ringlet": {"gbps": st(8.0, 7.9, 8.1)},
                         "ringlet-base": {"gbps": st(10.0, 9.8, 10.2)}}},
    "rr": {"1 KiB": {"ringlet": {"p99_us": st(400.0, 390.0, 410.0)},
                     "ringlet-base": {"p99_us": st(500.0, 495.0, 505.0)}}},
    "churn": {"conc 4": {"ringlet": {"streams_per_s": st(100.0, 100.0, 100.0, 1)},
                         "ringlet-base": {"streams_per_s": st(90.0, 90.0, 90.0, 1)}}}},
    "base": {"rev": "HEAD~1", "commit": "0" * 40}}
got = {(r["case"], r["metric"]): r for r in report.base_rows(fake)}
assert got[("up x1", "gbps")]["verdict"] == "within noise", got[("up x1", "gbps")]
assert got[("down x1", "gbps")]["verdict"] == "worse", got[("down x1", "gbps")]
assert abs(got[("down x1", "gbps")]["diff_pct"] + 20.0) < 1e-9
assert got[("1 KiB", "p99_us")]["verdict"] == "better", got[("1 KiB", "p99_us")]
assert got[("conc 4", "streams_per_s")]["verdict"] == "no spread"
text = report.summary(fake)
assert "## ringlet vs ringlet-base" in text and "1 of 3 figure(s) within noise" in text, text
print("results.json: %d samples; summary.md: %d lines" % (len(res["samples"]),
                                                          summary.count("\n")))
PY

# bench/check must judge the run: 0 (all met) or 1 (some short), never a usage/file error.
python3 bench/check "$run" --allow-missing >"$out/check.log" 2>&1
rc=$?
[ "$rc" -le 1 ] || { cat "$out/check.log"; fail "bench/check exited $rc"; }
grep -q 'met\|SHORT' "$out/check.log" || fail "bench/check printed no verdicts"
echo "PASS"
