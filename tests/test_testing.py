from __future__ import annotations

import asyncio

from reliactl.testing import FakeClock


def test_fake_clock_sleeps_instantly_and_records() -> None:
    clock = FakeClock(start=10.0)
    clock.sleep(5)
    asyncio.run(clock.async_sleep(2.5))
    assert clock.monotonic() == 17.5
    assert clock.sleeps == [5, 2.5]


def test_wall_clock_can_jump_without_moving_monotonic_time() -> None:
    clock = FakeClock(start=0.0, wall_start=1000.0)
    clock.set_wall(10.0)
    assert clock.time() == 10.0 and clock.monotonic() == 0.0
    clock.advance(3)
    assert clock.time() == 13.0
