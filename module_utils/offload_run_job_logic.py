# -*- coding: utf-8 -*-
# PRIVATE to this project's modules: pure logic of "run one offload by hand" (library/offload_run_job.py).
from __future__ import annotations

import re

ROWS_LINE = re.compile(r"Rows offloaded:\s*([0-9][0-9,]*)")


def job_argv(python: str, script: str, table: dict) -> list[str]:
    """The argv of K2's job for one TABLE_CONFIG entry, inside the Spark container; --columns always (K2's default
    * breaks silver)."""
    return [python, script,
            "--source-table", table["source"], "--target-table", table["target"],
            "--timestamp-col", table["timestamp_col"], "--sequence-col", table["sequence_col"],
            "--layer", table["layer"], "--columns", table.get("columns") or "*"]


def rows_offloaded(lines: list[str]) -> int | None:
    for line in reversed(lines):
        match = ROWS_LINE.search(line)
        if match:
            return int(match.group(1).replace(",", ""))
    return None


def judge(rc: int | None, lines: list[str], success_patterns: list[str], failure_patterns: list[str],
          no_data_patterns: tuple | list = (), timed_out_after: int | None = None) -> tuple[bool, str]:
    """(succeeded, one-line reason): exit 0 AND a success (or nothing-to-do) line AND no failure line."""
    if timed_out_after is not None:
        return False, f"timed out after {timed_out_after} s; the job was stopped inside the container"
    failure = next((line for line in lines for pat in failure_patterns if pat and pat in line), None)
    if rc != 0:
        last = next((line for line in reversed(lines) if line.strip()), "no output")
        return False, f"exit code {rc}: {last.strip()[:300]}"
    if failure:
        return False, f"exit code 0 but the job logged a failure: {failure.strip()[:300]}"
    success = next((line for line in lines for pat in success_patterns if pat and pat in line), None)
    if success is None:
        quiet = next((line for line in lines for pat in no_data_patterns if pat and pat in line), None)
        if quiet is not None:
            return True, f"exit code 0, nothing new to offload: '{quiet.strip()[:200]}'"
        return False, f"exit code 0 but none of the success lines {success_patterns} was printed"
    return True, f"exit code 0 and '{success.strip()[:200]}'"
