#!/usr/bin/env python3
"""Compares `tests/bench/run` outputs of two trees: runs before a change and after it.

    tests/bench/compare.py --before b1.json b2.json b3.json --after a1.json a2.json a3.json

Prints a Markdown table, one row per entry found on both sides: the range of the
medians before, the median of the medians after, and the verdict. An entry regresses
when its median after is worse than the whole range before by more than --tolerance
(5 % by default): slower for `ns`, fewer for throughput units. Exit status 1 when one
does. The runs should be interleaved (before, after, before, ...) on one machine, so
that its noise falls on both sides.

For an entry with a floor (the bare peer measured in the same run), the table gives the
same comparison of `median / floor_median` too: when a run was slowed down as a whole,
its floor moved with it, and the ratio tells a slower machine from slower code.
"""

import argparse
import json
import statistics
import sys


def lower_is_better(unit):
    return unit in ("ns", "us", "µs", "ms", "s", "%", "MiB", "KiB", "bytes")


def medians(paths):
    """{name: (unit, [median per run], [median / floor per run])} over the runs in `paths`."""
    out = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for entry in json.load(f):
                if "median" not in entry:
                    continue
                unit, values, ratios = out.setdefault(entry["name"], (entry.get("unit", ""), [], []))
                values.append(float(entry["median"]))
                if entry.get("floor_median"):
                    ratios.append(float(entry["median"]) / float(entry["floor_median"]))
    return out


def verdict(unit, before, after, tolerance):
    low, high = min(before), max(before)
    if lower_is_better(unit):
        worse = after > high * (1 + tolerance)
        change = after / high - 1 if after > high else (after / low - 1 if after < low else 0.0)
    else:
        worse = after < low * (1 - tolerance)
        change = after / low - 1 if after < low else (after / high - 1 if after > high else 0.0)
    return worse, change


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", nargs="+", required=True, metavar="JSON")
    parser.add_argument("--after", nargs="+", required=True, metavar="JSON")
    parser.add_argument("--tolerance", type=float, default=0.05)
    args = parser.parse_args(argv)

    before, after = medians(args.before), medians(args.after)
    regressions = 0
    print("| entry | unit | before (range of medians) | after (median of medians) | outside the range | verdict "
          "| ratio to floor before | after | outside | verdict |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in sorted(set(before) & set(after)):
        unit, values_before, ratios_before = before[name]
        after_median = statistics.median(after[name][1])
        worse, change = verdict(unit, values_before, after_median, args.tolerance)
        regressions += worse
        row = (f"| `{name}` | {unit} | {min(values_before):.4g}–{max(values_before):.4g} | {after_median:.4g} | "
               f"{change:+.1%} | {'**regressed**' if worse else 'ok'} |")
        ratios_after = after[name][2]
        if ratios_before and ratios_after:
            ratio_after = statistics.median(ratios_after)
            ratio_worse, ratio_change = verdict(unit, ratios_before, ratio_after, args.tolerance)
            row += (f" {min(ratios_before):.3g}–{max(ratios_before):.3g} | {ratio_after:.3g} | {ratio_change:+.1%} | "
                    f"{'**worse**' if ratio_worse else 'ok'} |")
        else:
            row += " | | | |"
        print(row)
    for name in sorted(set(before) ^ set(after)):
        print(f"| `{name}` | | {'only before' if name in before else 'only after'} | | | |")
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
