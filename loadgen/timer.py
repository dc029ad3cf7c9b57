"""A precise sleep for trio on Linux: a timerfd waited on like a socket.

trio sleeps in `epoll_wait`, whose timeout CPython rounds up to whole milliseconds, so
a send scheduled with `trio.sleep_until` leaves up to 1 ms late (0.5 ms on average):
too coarse for sends 50 µs apart. A timerfd fires on the kernel's high-resolution
timer instead; with the process's timer slack lowered from 50 µs to 1 µs
(`PR_SET_TIMERSLACK`), a wait ends within tens of µs of its deadline, without spinning
(so the worker's CPU still says how busy it is). Python 3.12 has no `os.timerfd_*`
(3.13 does), hence ctypes.
"""

from __future__ import annotations

import ctypes
import os
import sys

import trio

__all__ = ["PreciseTimer", "TimerFd", "precise_timer_available"]

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
_PR_SET_TIMERSLACK = 29
# Below this, a timer costs more (a syscall and a wakeup) than it saves.
_MIN_WAIT_S = 20e-6


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def precise_timer_available() -> bool:
    return sys.platform.startswith("linux")


class TimerFd:
    """One non-blocking timerfd on CLOCK_MONOTONIC (trio's clock), with the process's
    timer slack lowered to 1 µs. Readable once armed and expired; `consume` clears it."""

    def __init__(self) -> None:
        if not precise_timer_available():
            raise OSError("a timerfd needs Linux")
        self._libc = ctypes.CDLL(None, use_errno=True)
        fd = self._libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_create: {os.strerror(err)}")
        self._fd = fd
        self._spec = _Itimerspec()
        self._spec_ref = ctypes.byref(self._spec)
        self._settime = self._libc.timerfd_settime
        # 1 µs of timer slack instead of 50: this process's timers fire on time.
        self._libc.prctl(_PR_SET_TIMERSLACK, 1000, 0, 0, 0)

    def fileno(self) -> int:
        return self._fd

    def arm_ns(self, delay_ns: int) -> None:
        """Expires `delay_ns` (> 0) from now; replaces any earlier arming."""
        value = self._spec.it_value
        value.tv_sec, value.tv_nsec = divmod(delay_ns, 1_000_000_000)
        self._set()

    def disarm(self) -> None:
        value = self._spec.it_value
        value.tv_sec = value.tv_nsec = 0
        self._set()

    def consume(self) -> bool:
        """Clears an expiration; False when there was none."""
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            return False
        return True

    def _set(self) -> None:
        if self._settime(self._fd, 0, self._spec_ref, None) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_settime: {os.strerror(err)}")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class PreciseTimer:
    """One timerfd; `sleep_until` must not be called by two tasks at once."""

    def __init__(self) -> None:
        if not precise_timer_available():
            raise OSError("PreciseTimer needs Linux (timerfd)")
        self._timer = TimerFd()

    async def sleep_until(self, deadline: float) -> None:
        """Sleeps until trio time `deadline` (a checkpoint, like trio.sleep_until)."""
        delay = deadline - trio.current_time()
        if delay < _MIN_WAIT_S:
            await trio.lowlevel.checkpoint()
            return
        timer = self._timer
        timer.arm_ns(int(delay * 1e9))
        try:
            await trio.lowlevel.wait_readable(timer.fileno())
        finally:
            if not timer.consume():
                timer.disarm()  # a cancel left it armed

    def close(self) -> None:
        """Closes the timerfd; not while a task waits on it."""
        self._timer.close()
