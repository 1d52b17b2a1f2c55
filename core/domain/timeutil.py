"""Time: PL stores UTC; people see the local time of the faskes (WIB, WITA, WIT)."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

WIB, WITA, WIT = "Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura"
ZONE_LABELS = {WIB: "WIB", WITA: "WITA", WIT: "WIT"}


def local(at: datetime, tz: str) -> datetime:
    return at.astimezone(ZoneInfo(tz))


def local_date(at: datetime, tz: str) -> date:
    return local(at, tz).date()


def end_of_local_day(day: date, tz: str) -> datetime:
    """23:59:59.999999 local time of ``day``, as an aware datetime."""
    return datetime.combine(day, time.max, tzinfo=ZoneInfo(tz))


def start_of_local_day(day: date, tz: str) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(tz))


def age_on(birth_date: date, on: date) -> int:
    """Completed years; a 29 February birthday counts on 1 March in common years."""
    years = on.year - birth_date.year
    try:
        birthday = birth_date.replace(year=on.year)
    except ValueError:  # 29 Feb in a common year
        birthday = date(on.year, 3, 1)
    return years - (1 if on < birthday else 0)
