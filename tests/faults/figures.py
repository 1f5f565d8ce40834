#!/usr/bin/env python3
"""Summarise FAULT-RESULT lines (tests/faults/run.sh's results.txt, or any case's output) as
one row per figure: case, bound, the worst measured value, unit, and how many times it was
measured; the figures docs/RELIABILITY.md's fault matrix quotes.

    python3 tests/faults/figures.py /tmp/ringlet-faults.XXXXXX/results.txt
"""
import re
import sys


def main(paths):
    rows = {}
    for path in paths:
        with open(path) as f:
            for line in f:
                m = re.search(r"FAULT-RESULT case=(\S+) bound=(\S+) measured=(\S+) unit=(\S+)",
                              line)
                if not m:
                    continue
                case, bound, measured, unit = m.groups()
                r = rows.setdefault(case, {"bound": bound, "unit": unit, "vals": []})
                r["vals"].append(measured)
    for case, r in rows.items():
        nums = [float(v) for v in r["vals"] if re.match(r"^[-+]?[0-9.]+$", v)]
        worst = "never" if len(nums) < len(r["vals"]) else (
            ("%+d" if r["unit"] in ("fds", "kB") else "%.2f") % max(nums) if r["unit"] != "lines"
            else "%d" % max(nums))
        print("%-40s bound %-8s worst %-8s %-5s (%d runs)" % (case, r["bound"], worst,
                                                             r["unit"], len(r["vals"])))


if __name__ == "__main__":
    main(sys.argv[1:] or ["/dev/stdin"])
