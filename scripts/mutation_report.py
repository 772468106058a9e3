"""`make mutation`'s score per file: mutmut 3 prints one line per mutant (`mutmut results --all true`), not a score,
so this aggregates them: killed (by a test or a timeout), survived, other (no test reaches it, suspicious, ...), and
killed / total. Exits 1 when a file scores below --min (percent; docs/testing.md lists the equivalent survivors).

Usage: mutmut results --all true | scripts/mutation_report.py [--min 85]
"""
from __future__ import annotations

import argparse
import re
import sys

KILLED = ("killed", "timeout", "caught by type check")
# "    offload_rules.x_triage__mutmut_12: survived" (a method: offload_x.xǁClassǁname__mutmut_3)
LINE = re.compile(r"^\s*(?P<module>[A-Za-z0-9_.]+?)\.x[_ǁ]\S*__mutmut_\d+: (?P<status>.+?)\s*$")


def tally(lines) -> dict[str, dict[str, int]]:
    """{file: {killed, survived, other}} from mutmut's result lines."""
    per_file: dict[str, dict[str, int]] = {}
    for line in lines:
        match = LINE.match(line)
        if not match:
            continue
        counts = per_file.setdefault(f"module_utils/{match['module']}.py", {"killed": 0, "survived": 0, "other": 0})
        status = match["status"]
        counts["killed" if status in KILLED else "survived" if status == "survived" else "other"] += 1
    return per_file


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min", type=float, default=0.0, help="lowest acceptable score per file, in percent")
    args = parser.parse_args()
    per_file = tally(sys.stdin)
    if not per_file:
        print("mutation: mutmut reported no mutants", file=sys.stderr)
        return 1
    width = max(len(name) for name in per_file)
    print(f"{'file':<{width}}  {'killed':>6}  {'survived':>8}  {'other':>5}  {'score':>16}")
    low = []
    for name in sorted(per_file):
        c = per_file[name]
        total = c["killed"] + c["survived"] + c["other"]
        score = 100.0 * c["killed"] / total
        print(f"{name:<{width}}  {c['killed']:>6}  {c['survived']:>8}  {c['other']:>5}  "
              f"{c['killed']:>4}/{total:<4} {score:5.1f} %")
        if score < args.min:
            low.append(name)
    if low:
        print(f"mutation: below {args.min:g} % killed: {', '.join(low)} (survivors: mutmut results; one: mutmut show "
              "NAME)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
