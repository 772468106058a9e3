# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The alert that started a remediation, checked as data. Its fields come from whoever posted to the webhook: each one
must have the shape Alertmanager gives it (or be absent), else the run stops before anything, naming the field.
Nothing here renders or evaluates a value; a value that is refused is shown cut and quoted, never as given."""
from __future__ import annotations

import re

from ansible.module_utils.offload_common import parse_utc

# The variables the EDA rulebooks hand over (extensions/eda/rulebooks) and the field each one becomes.
VARIABLES = {
    "k2_alert_name": "name",
    "k2_alert_table": "table",
    "k2_alert_job": "job",
    "k2_alert_starts_at": "started_at",
    "k2_alert_fingerprint": "fingerprint",
}
# Alertmanager's own forms: a Prometheus alert name, a scrape job label, a 64-bit hex fingerprint, RFC 3339 with up to
# nanoseconds. Without backslashes, so that the rulebooks' conditions carry the same patterns as they are
# (tests/unit/test_offload_alert_event.py holds them together): an alert refused here never starts a run by the loop.
PATTERNS = {
    "name": ("[A-Za-z_:][A-Za-z0-9_:]{0,127}", "a Prometheus alert name"),
    "table": ("[A-Za-z_][A-Za-z0-9_]{0,62}", "a table name"),
    "job": ("[A-Za-z0-9_.:-]{1,128}", "a scrape job label"),
    "started_at": ("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})",
                   "an RFC 3339 time such as 2026-12-07T10:00:00Z"),
    "fingerprint": ("[0-9a-f]{16}", "16 hex digits (Alertmanager's fingerprint)"),
}
SHOWN_CHARS = 60


class AlertEventError(ValueError):
    """A field of the alert is not what Alertmanager sends: one line naming the variable."""


def shown(value) -> str:
    """A refused value as the operator sees it: quoted, on one line, cut."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 3] + "..."


def _field(variable: str, value, tables: list[str]):
    field = VARIABLES[variable]
    if value is None or value == "":
        return None
    pattern, form = PATTERNS[field]
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise AlertEventError(f"{variable} must be {form}, got {shown(value)}: the alert is refused and this run "
                              "changes nothing.")
    if field == "started_at" and parse_utc(value) is None:
        raise AlertEventError(f"{variable} is not a valid time, got {shown(value)}: the alert is refused and this run "
                              "changes nothing.")
    if field == "table" and value not in tables:
        raise AlertEventError(f"{variable} names a table this stack does not offload ({value!r} is not among the "
                              f"{len(tables)} sources of k2_tables): the alert is refused and this run changes nothing.")
    return value


def alert_event(raw: dict, tables: list[str]) -> dict:
    """The alert's fields, each checked (None when the run did not come from an alert), and whether it did. `raw`
    holds every k2_alert_* variable of the run: a name not among VARIABLES (a typo such as k2_alert_start_at) would
    otherwise be dropped without a word."""
    unknown = sorted(set(raw) - set(VARIABLES))
    if unknown:
        raise AlertEventError(f"{unknown[0]} is not an alert variable (known: {', '.join(VARIABLES)}): this run "
                              "changes nothing.")
    alert = {VARIABLES[variable]: _field(variable, raw.get(variable), tables) for variable in VARIABLES}
    alert["from_alert"] = any(value is not None for value in alert.values())
    return alert
