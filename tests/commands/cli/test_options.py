"""Shared option values: dates as aware datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import typer

from commands.cli.options import parse_date


def test_parse_date() -> None:
    assert parse_date(None, "--since") is None
    assert parse_date("2018-01-31", "--since") == datetime(2018, 1, 31, tzinfo=UTC)
    assert parse_date("2018-01-31T12:30", "--since") == datetime(2018, 1, 31, 12, 30, tzinfo=UTC)
    # A zone given is kept, not replaced by UTC.
    plus_two = parse_date("2018-01-31T12:00+02:00", "--until")
    assert plus_two == datetime(2018, 1, 31, 10, tzinfo=UTC)
    assert plus_two is not None
    assert plus_two.utcoffset() == timedelta(hours=2)
    assert plus_two.tzinfo == timezone(timedelta(hours=2))


@pytest.mark.parametrize("value", ["2018-13-01", "yesterday", "", "01/31/2018"])
def test_parse_date_names_the_option(value: str) -> None:
    with pytest.raises(typer.BadParameter) as info:
        parse_date(value, "--until")
    assert info.value.param_hint == "--until"
    assert f"{value!r} is not a date like 2018-01-31" in info.value.message
