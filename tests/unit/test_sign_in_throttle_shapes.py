"""What the sign-in throttles count an address as, and the sliding window's arithmetic."""

from __future__ import annotations

import pytest

from tenant_security.identity.throttle import (
    UNKNOWN_ADDRESS,
    WINDOW_SECONDS,
    address_block,
    retry_after,
    sliding_cap,
)


@pytest.mark.parametrize(
    ("address", "counted_as"),
    [
        ("198.51.100.7", "198.51.100.7"),  # IPv4: the address itself (/32)
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),  # the same /64
        ("2001:DB8:1:2:0:0:0:9", "2001:db8:1:2::/64"),  # however it is written
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),  # the next /64 is another caller
        ("::ffff:198.51.100.7", "198.51.100.7"),  # an IPv4-mapped address is its IPv4 address
        ("fe80::1%eth0", "fe80::/64"),
        ("not an address", "not an address"),
        (None, UNKNOWN_ADDRESS),
        ("", UNKNOWN_ADDRESS),
    ],
)
def test_ipv6_addresses_count_by_their_64(address: str | None, counted_as: str) -> None:
    assert address_block(address) == counted_as


def test_the_previous_minute_counts_for_the_part_still_within_the_last_60_seconds() -> None:
    assert sliding_cap(30, 0, 59.0) == 30  # nothing before: the whole limit
    assert sliding_cap(30, 30, 0.0) == 0  # a full minute that just ended: nothing yet
    assert sliding_cap(30, 30, 30.0) == pytest.approx(15)  # half of it still counts
    assert sliding_cap(30, 30, 59.0) == pytest.approx(29.5)


@pytest.mark.parametrize(
    ("previous", "current", "elapsed"),
    [(30, 0, 0.0), (30, 10, 20.5), (30, 15, 30.0), (0, 30, 0.5), (0, 30, 59.9), (12, 30, 45.0)],
)
def test_retry_after_is_when_the_window_admits_again(previous: int, current: int, elapsed: float) -> None:
    wait = retry_after(30, previous, current, elapsed)
    assert 1 <= wait <= WINDOW_SECONDS
    later = elapsed + wait
    if later < WINDOW_SECONDS:  # still this minute
        assert current < sliding_cap(30, previous, later)
    else:  # the next minute: this one's count is now the previous one
        assert sliding_cap(30, current, later - WINDOW_SECONDS) > 0
    sooner = elapsed + wait - 1
    if wait > 1 and sooner < WINDOW_SECONDS:
        assert current >= sliding_cap(30, previous, sooner)  # not a second sooner
