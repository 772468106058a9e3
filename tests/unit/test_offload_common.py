"""The project's one ISO-8601 timestamp parser (module_utils/offload_common.py): Prefect's 7-digit fractions,
'Z' or 'z', offsets, naive values as UTC; anything else is None."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

import offload_common as common


@pytest.mark.parametrize("text, expected", [
    ("2026-11-26T07:43:50.615234Z", datetime(2026, 11, 26, 7, 43, 50, 615234, tzinfo=timezone.utc)),
    ("2026-11-26T07:43:50Z", datetime(2026, 11, 26, 7, 43, 50, tzinfo=timezone.utc)),
    ("2026-11-26T07:43:50.6z", datetime(2026, 11, 26, 7, 43, 50, 600000, tzinfo=timezone.utc)),
    ("2026-11-26T07:43:50.361111476Z", datetime(2026, 11, 26, 7, 43, 50, 361111, tzinfo=timezone.utc)),
    ("2026-11-26T09:43:50+02:00", datetime(2026, 11, 26, 7, 43, 50, tzinfo=timezone.utc)),
    ("2026-11-26T07:43:50", datetime(2026, 11, 26, 7, 43, 50, tzinfo=timezone.utc)),  # naive = UTC
    ("2026-11-26 07:43:50.1+00:00", datetime(2026, 11, 26, 7, 43, 50, 100000, tzinfo=timezone.utc)),
    ("yesterday", None), ("", None), (None, None), (1795679029, None), ("2026-13-45T99:00:00Z", None),
])
def test_parse_utc_reads_every_iso_form_the_stack_writes(text, expected):
    assert common.parse_utc(text) == expected


def test_parse_utc_keeps_an_aware_datetime_and_converts_it_to_utc():
    moment = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc).astimezone()
    assert common.parse_utc(moment) == datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
    assert common.parse_utc(moment).tzinfo == timezone.utc
