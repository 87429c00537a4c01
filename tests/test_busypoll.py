"""Specification of hftfeed.runtime.busypoll: the busy-polling loop delivers, keeps its timers, and burns a
core while idle (the documented cost); the normal loop sleeps. Loopback only, generous bounds."""

import asyncio
import selectors
import socket
import threading
import time

import pytest

from hftfeed.runtime import busypoll


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


class _Collector(asyncio.DatagramProtocol):
    def __init__(self):
        self.queue = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.queue.put_nowait(data)


def test_busy_selector_returns_an_event_that_is_already_there():
    a, b = socket.socketpair()
    with busypoll.BusyPollSelector() as selector:
        selector.register(a, selectors.EVENT_READ, "a")
        b.send(b"x")
        ready = selector.select(5.0)
    a.close()
    b.close()
    assert [(key.data, events) for key, events in ready] == [("a", selectors.EVENT_READ)]


def test_busy_selector_returns_empty_when_its_timeout_expires():
    a, b = socket.socketpair()
    with busypoll.BusyPollSelector() as selector:
        selector.register(a, selectors.EVENT_READ)
        start = time.monotonic()
        ready = selector.select(0.05)
        elapsed = time.monotonic() - start
        assert selector.select(0) == []
    a.close()
    b.close()
    assert ready == []
    assert 0.045 <= elapsed < 2.0


@pytest.mark.parametrize("busy", [True, False])
def test_udp_ping_pong_through_the_loop_delivers_every_datagram_in_order(busy):
    loop = busypoll.new_event_loop(busy)

    async def ping_pong():
        echo, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
        port = echo.get_extra_info("sockname")[1]
        client, collector = await loop.create_datagram_endpoint(
            _Collector, remote_addr=("127.0.0.1", port))
        answers = []
        for i in range(200):
            client.sendto(b"ping %d" % i)
            answers.append(await asyncio.wait_for(collector.queue.get(), 5.0))
        client.close()
        echo.close()
        await asyncio.sleep(0)  # the sockets close in the next loop iteration
        return answers

    try:
        answers = loop.run_until_complete(ping_pong())
    finally:
        loop.close()
    assert answers == [b"ping %d" % i for i in range(200)]


def test_timers_fire_on_time_in_busy_poll_mode():
    loop = busypoll.new_event_loop(True)
    fired = []
    try:
        start = loop.time()
        loop.call_later(0.05, lambda: fired.append(loop.time() - start))
        loop.call_later(0.10, lambda: fired.append(loop.time() - start))
        loop.run_until_complete(asyncio.sleep(0.2))
    finally:
        loop.close()
    assert len(fired) == 2
    assert 0.05 <= fired[0] < 0.5
    assert 0.10 <= fired[1] < 0.6


def test_call_soon_threadsafe_wakes_a_busy_loop_with_no_timers():
    loop = busypoll.new_event_loop(True)
    try:
        future = loop.create_future()
        threading.Timer(0.05, loop.call_soon_threadsafe, (future.set_result, "woken")).start()
        assert loop.run_until_complete(asyncio.wait_for(future, 5.0)) == "woken"
    finally:
        loop.close()


def _cpu_over_idle_window(busy, window_s=0.5):
    loop = busypoll.new_event_loop(busy)
    try:
        cpu_start, wall_start = time.process_time(), time.monotonic()
        loop.run_until_complete(asyncio.sleep(window_s))
        return time.process_time() - cpu_start, time.monotonic() - wall_start
    finally:
        loop.close()


def test_busy_poll_burns_a_core_while_idle_and_the_normal_loop_sleeps():
    busy_cpu, busy_wall = _cpu_over_idle_window(True)
    normal_cpu, normal_wall = _cpu_over_idle_window(False)
    # Busy: CPU time close to wall time; the bound is loose because a CI box running other
    # jobs on its two cores hands a spinning process only part of a core.
    assert busy_cpu >= 0.3 * busy_wall, (busy_cpu, busy_wall)
    assert busy_cpu >= 10 * normal_cpu, (busy_cpu, normal_cpu)
    # Normal: asleep in epoll_wait almost the whole window.
    assert normal_cpu <= 0.1 * normal_wall, (normal_cpu, normal_wall)


def test_pingpong_measurement_reports_one_way_percentiles():
    result = busypoll.measure_pingpong(True, count=300, warmup=50, pin=False, timeout_s=20.0)
    assert result["mode"] == "busy-poll"
    assert not result["timed_out"]
    assert result["count"] == 300
    assert 0 < result["p50_ns"] <= result["p99_ns"] <= result["max_ns"]
