"""The ticks of a cron expression in a timezone, as instants: the one place pgqueue asks its cron library
(croniter). Pure functions of the instants they are given, so that what happens around a daylight-saving
change can be tested with given instants; the scheduler gives them the database's now().

Expressions: 5 fields (minute hour day-of-month month day-of-week), 6 fields with seconds first (as in
Quartz, Spring and most cron dialects with seconds; croniter's own default puts them last), or an alias
(``@hourly``...). ``H`` (a hashed value, as in Jenkins) is spread by the schedule's name. Around
daylight-saving changes croniter matches wall-clock times: a time the clocks skip (02:30 on the night
they go forward in Europe/Paris) runs once, at the first instant after the gap (03:00 local time); a time
that happens twice (02:30 on the night they go back) runs twice, an hour apart. docs/scheduling.md says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from croniter import croniter

UTC = timezone.utc
ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_FORMS = ("5 fields (minute hour day-of-month month day-of-week, e.g. '*/5 * * * *'), 6 fields with seconds "
          "first (e.g. '*/10 * * * * *'), or one of " + ", ".join(ALIASES))
MAX_GRACE = timedelta(seconds=60)  # a tick seen later than this after its time counts as missed


def zone(name: object) -> ZoneInfo:
    """The IANA timezone ``name``, else ValueError naming it."""
    if isinstance(name, ZoneInfo):
        if name.key is None:  # read from a file: no name to store, nor for another scheduler to read
            raise ValueError("timezone must be an IANA name such as 'Europe/Paris', or a ZoneInfo made from one")
        return name
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"timezone must be an IANA name such as 'Europe/Paris' or 'UTC', not {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {name!r}: use an IANA name such as 'Europe/Paris', "
                         "'America/New_York' or 'UTC'") from None


class Cron:
    """A cron ``expression`` read in ``timezone`` (an IANA name). ValueError names what is wrong with
    either. ``hash_id`` spreads ``H`` fields (the schedule's name)."""

    def __init__(self, expression: str, timezone: str | ZoneInfo = "UTC", hash_id: str = "") -> None:
        if not isinstance(expression, str):
            raise TypeError(f"a cron expression is a str, not {type(expression).__name__} {expression!r}")
        self.expression = " ".join(expression.split())
        if self.expression.startswith("@"):
            self.expression = self.expression.lower()
        self.zone = zone(timezone)
        self.timezone = self.zone.key
        fields = self.expression.split(" ")
        if self.expression.startswith("@"):
            if self.expression not in ALIASES:
                raise ValueError(f"invalid cron expression {expression!r}: unknown alias; use {_FORMS}")
        elif len(fields) not in (5, 6):
            hint = " (is it a function's dotted path? Schedule takes the expression first)" if len(fields) == 1 else ""
            raise ValueError(f"invalid cron expression {expression!r}: {len(fields)} field(s){hint}; use {_FORMS}")
        self._options = {"second_at_beginning": len(fields) == 6, "hash_id": hash_id.encode() if hash_id else None}
        from croniter import CroniterError  # imported once a schedule is declared: not by every `import pgqueue`

        try:
            self.next_after(datetime.now(UTC))
        except (CroniterError, ValueError, KeyError, IndexError) as exc:
            reason = "it never matches a date" if "find next date" in str(exc) else str(exc) or type(exc).__name__
            raise ValueError(f"invalid cron expression {expression!r}: {reason}; use {_FORMS}") from None

    def __repr__(self) -> str:
        return f"Cron({self.expression!r}, {self.timezone!r})"

    def _iter(self, start: datetime) -> croniter:
        from croniter import croniter

        if start.tzinfo is None:
            raise ValueError("instants must be timezone-aware")
        return croniter(self.expression, start.astimezone(self.zone), ret_type=datetime, **self._options)

    def next_after(self, instant: datetime) -> datetime:
        """The first tick strictly after ``instant``, in UTC."""
        return self._iter(instant).get_next().astimezone(UTC)

    def latest_until(self, instant: datetime) -> datetime:
        """The latest tick at or before ``instant``, in UTC."""
        before = self._iter(instant).get_prev().astimezone(UTC)  # strictly before
        at = self.next_after(before)
        return at if at <= instant else before

    def ticks(self, after: datetime, until: datetime, limit: int | None = None) -> Iterator[datetime]:
        """The ticks in (``after``, ``until``], in UTC, at most ``limit`` of them."""
        it = self._iter(after)
        count = 0
        while limit is None or count < limit:
            tick = it.get_next().astimezone(UTC)
            if tick > until:
                return
            count += 1
            yield tick

    def grace(self, tick: datetime) -> timedelta:
        """How late a scheduler may see ``tick`` and still count it as on time: half the time to the tick
        after it, at most MAX_GRACE (a minute)."""
        return min(MAX_GRACE, (self.next_after(tick) - tick) / 2)
