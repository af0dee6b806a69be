#!/usr/bin/env python3
"""Prints the rows of docs/benchmarks.md that miss their target (run at the end of `make bench`).

  check.py [--strict] [FILE]      (FILE: docs/benchmarks.md by default)

Every table of the file with a `target` column must also have a `met` column, and every row of it
says `yes` (met), `no` (not met, bold or not) or `no target` (the project states none; then its
target cell is `—`). The verdicts are the ones the benchmark scripts computed when they measured
(scripts/bench-hsm.sh, scripts/bench/report.py); this checker reads them, it measures nothing.

Output: one line per row that misses, then a summary line. Exit status: 0, or 1 with --strict
when a row misses; 2 when the file breaks the format (a table with a target but no met column, a
verdict other than the three above, a row with a target but no verdict).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
NO_TARGET = ("", "—", "-")


@dataclass
class Row:
    section: str
    line: int
    cells: dict[str, str]
    verdict: str  # "met", "missed", "no target"

    def label(self) -> str:
        what = self.cells.get("what") or self.cells.get("") or next(iter(self.cells.values()), "")
        num = self.cells.get("#", "")
        what = re.sub(r"\s+", " ", what)
        if len(what) > 90:
            what = what[:87] + "..."
        return f"{num} {what}".strip()


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _plain(cell: str) -> str:
    return cell.replace("**", "").replace("`", "").strip().lower()


def parse(text: str) -> tuple[list[Row], list[str]]:
    """The judged rows of every table with a target column, and the format errors."""
    rows: list[Row] = []
    errors: list[str] = []
    section = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        is_table = line.lstrip().startswith("|") and i + 1 < len(lines) and re.match(r"^\s*\|[\s:|-]+\|\s*$", lines[i + 1])
        if not is_table:
            i += 1
            continue
        header = [_plain(c) for c in _cells(line)]
        body_start = i + 2
        j = body_start
        while j < len(lines) and lines[j].lstrip().startswith("|"):
            j += 1
        i = j
        if "target" not in header:
            continue
        if "met" not in header:
            errors.append(f"{section}: line {body_start - 1}: a table with a target column has no met column")
            continue
        for n in range(body_start, j):
            cells = _cells(lines[n])
            if len(cells) != len(header):
                errors.append(f"{section}: line {n + 1}: {len(cells)} cells, the header has {len(header)}")
                continue
            named = dict(zip(header, cells))
            target, met = _plain(named["target"]), _plain(named["met"])
            if met == "yes":
                verdict = "met"
            elif met == "no":
                verdict = "missed"
            elif met == "no target" and target in NO_TARGET:
                verdict = "no target"
            else:
                errors.append(f"{section}: line {n + 1}: verdict {named['met']!r} for target {named['target']!r}")
                continue
            if verdict != "no target" and target in NO_TARGET:
                errors.append(f"{section}: line {n + 1}: verdict {named['met']!r} without a target")
                continue
            rows.append(Row(section, n + 1, named, verdict))
    return rows, errors


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("file", nargs="?", type=Path, default=DEFAULT)
    p.add_argument("--strict", action="store_true", help="exit 1 when a row misses its target")
    a = p.parse_args(argv)
    try:
        text = a.file.read_text()
    except OSError as e:
        print(f"error: {a.file}: {e.strerror}", file=sys.stderr)
        return 2
    rows, errors = parse(text)
    for e in errors:
        print(f"error: {a.file.name}: {e}", file=sys.stderr)
    missed = [r for r in rows if r.verdict == "missed"]
    for r in missed:
        ratio = next((v for k, v in r.cells.items() if k.startswith("ratio")), "")
        print(f"MISSED  {r.section} | {r.label()} | {ratio.replace('**', '')} | target {r.cells['target']}")
    counts = {v: sum(1 for r in rows if r.verdict == v) for v in ("met", "missed", "no target")}
    print(
        f"bench-check: {len(rows)} rows: {counts['met']} met, {counts['missed']} missed, "
        f"{counts['no target']} without a target ({a.file.name})"
    )
    if errors:
        return 2
    if not rows:
        print(f"error: {a.file.name}: no table with a target column", file=sys.stderr)
        return 2
    return 1 if (a.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
