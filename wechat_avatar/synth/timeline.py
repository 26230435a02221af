"""When sessions happen: a clock that is busy in the day and quiet at night (UTC+8).

Session starts are drawn on an "activity" axis where each local hour is as long as its
weight; mapping back to wall time stretches the busy hours and squeezes the night, so
evenly spread draws land mostly in the evening. The mapping is monotonic, so createTime
only ever increases.
"""

from __future__ import annotations

import bisect
import itertools
import random

START_S = 1_672_502_400  # 2023-01-01 00:00 in UTC+8
SPAN_DAYS = 540  # about eighteen months of history, whatever the message count
TZ_OFFSET_S = 8 * 3600

# Relative chat activity by local hour 0..23: late evening peak, dead at 4 am.
HOUR_WEIGHTS = (2, 1, 0.5, 0.3, 0.2, 0.3, 1, 3, 5, 6, 7, 8, 9, 8, 7, 7, 7, 8, 9, 10, 11, 12, 10, 6)
_CUMULATIVE = (0, *itertools.accumulate(HOUR_WEIGHTS))
_DAY_UNITS = _CUMULATIVE[-1]


def wall_seconds(units: float) -> float:
    """Activity units since START -> UTC seconds since the epoch."""
    day, rest = divmod(units, _DAY_UNITS)
    hour = min(bisect.bisect_right(_CUMULATIVE, rest) - 1, 23)
    frac = (rest - _CUMULATIVE[hour]) / HOUR_WEIGHTS[hour]
    return START_S + day * 86400 + (hour + frac) * 3600


class Clock:
    """Hands out session start times in milliseconds, spreading `sessions` over SPAN_DAYS."""

    def __init__(self, rng: random.Random, sessions: float) -> None:
        self._rng = rng
        self._mean_gap = SPAN_DAYS * _DAY_UNITS / max(sessions, 1.0)
        self._units = 0.0
        self.now_ms = START_S * 1000

    def next_session(self) -> int:
        """Jump ahead to the next session; never earlier than the last message plus a second."""
        self._units += self._rng.expovariate(1.0 / self._mean_gap)
        start = int(wall_seconds(self._units) * 1000) + self._rng.randint(0, 999)
        self.now_ms = max(start, self.now_ms + 1000)
        return self.now_ms

    def advance(self, delay_ms: int) -> int:
        self.now_ms += max(delay_ms, 1)
        return self.now_ms


def local_hour(ms: int) -> int:
    return (ms // 1000 + TZ_OFFSET_S) // 3600 % 24
