"""CircuitBreaker: the per-upstream state machine, driven with plain numbers as time."""

from __future__ import annotations

import pytest

from examples.reference_router._breaker import BreakerSettings, CircuitBreaker

SETTINGS = BreakerSettings(
    failure_threshold=3,
    timeout_threshold=2,
    recovery_s=10.0,
    success_threshold=2,
    backoff_factor=2.0,
    max_recovery_s=25.0,
)


def opened_at(now: float) -> CircuitBreaker:
    breaker = CircuitBreaker(SETTINGS)
    for _ in range(3):
        breaker.record_failure(now)
    assert breaker.state == "open"
    return breaker


def test_a_new_breaker_is_closed_and_lets_everything_through():
    breaker = CircuitBreaker(SETTINGS)
    assert breaker.state == "closed"
    assert all(breaker.allow(t) for t in range(5))


def test_it_opens_after_the_threshold_of_consecutive_failures():
    breaker = CircuitBreaker(SETTINGS)
    breaker.record_failure(0)
    breaker.record_failure(0)
    assert breaker.state == "closed" and breaker.allow(0)
    breaker.record_failure(0)
    assert breaker.state == "open" and not breaker.allow(0) and breaker.opens == 1


def test_a_success_resets_the_count_of_consecutive_failures():
    breaker = CircuitBreaker(SETTINGS)
    for _ in range(5):
        breaker.record_failure(0)
        breaker.record_failure(0)
        breaker.record_success(0)
    assert breaker.state == "closed"


def test_fewer_timeouts_than_failures_open_it():
    breaker = CircuitBreaker(SETTINGS)
    breaker.record_failure(0, timeout=True)
    assert breaker.state == "closed"
    breaker.record_failure(0, timeout=True)
    assert breaker.state == "open"


def test_it_stays_open_for_the_recovery_time():
    breaker = opened_at(100.0)
    assert not breaker.available(109.99) and not breaker.allow(109.99)
    assert breaker.available(110.0)
    assert breaker.retry_at() == 110.0


def test_half_open_lets_a_single_probe_through():
    breaker = opened_at(0.0)
    assert breaker.allow(10.0) and breaker.state == "half_open"
    assert not breaker.allow(10.0) and not breaker.available(10.5)  # the probe is taken


def test_it_closes_after_the_threshold_of_successful_probes():
    breaker = opened_at(0.0)
    assert breaker.allow(10.0)
    breaker.record_success(10.1)
    assert breaker.state == "half_open"
    assert breaker.allow(10.2)  # the next probe, one at a time
    breaker.record_success(10.3)
    assert breaker.state == "closed" and breaker.allow(10.3) and breaker.allow(10.3)


def test_a_failed_probe_reopens_it_for_longer_each_time_up_to_the_cap():
    breaker = opened_at(0.0)
    reopen_times = []
    now = 0.0
    for _ in range(4):
        now = breaker.retry_at()
        assert breaker.allow(now)
        breaker.record_failure(now)
        assert breaker.state == "open"
        reopen_times.append(breaker.retry_at() - now)
    assert reopen_times == [20.0, 25.0, 25.0, 25.0]
    assert breaker.opens == 5


def test_closing_resets_the_recovery_time():
    breaker = opened_at(0.0)
    breaker.allow(10.0)
    breaker.record_failure(10.0)  # reopened for 20 s
    for t in (30.0, 30.1):
        assert breaker.allow(t)
        breaker.record_success(t)
    assert breaker.state == "closed"
    for _ in range(3):
        breaker.record_failure(40.0)
    assert breaker.retry_at() == 50.0


def test_a_released_probe_frees_the_slot_without_a_verdict():
    breaker = opened_at(0.0)
    assert breaker.allow(10.0)
    breaker.release()
    assert breaker.state == "half_open" and breaker.allow(10.0)


def test_failures_of_attempts_started_before_it_opened_do_not_extend_it():
    breaker = opened_at(0.0)
    breaker.record_failure(5.0)
    assert breaker.retry_at() == 10.0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("failure_threshold", 0, "failure_threshold must be an integer >= 1, got 0"),
        ("timeout_threshold", True, "timeout_threshold must be an integer >= 1, got True"),
        ("recovery_s", -1.0, "recovery_s must be > 0, got -1.0"),
        ("backoff_factor", 0.5, "backoff_factor must be >= 1, got 0.5"),
        ("max_recovery_s", 1.0, "max_recovery_s must be >= recovery_s (2.0), got 1.0"),
    ],
)
def test_bad_settings_name_the_field(field, value, message):
    with pytest.raises(ValueError) as info:
        BreakerSettings(**{field: value})
    assert str(info.value) == message
