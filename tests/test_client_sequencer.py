"""Specification of hftfeed.client.sequencer: per-channel sequencing that one forged datagram
cannot move far."""

from hftfeed.client import sequencer as sq

S = 1000


def run(seqr, packets):
    return [seqr.packet(ch, session, seq, count, flags, (seq, count))
            for ch, session, seq, count, flags in packets]


def test_in_order_packets_are_applied_and_confirm_the_stream():
    s = sq.Sequencer(confirm_packets=3)
    assert run(s, [(1, S, 1, 2, 0), (1, S, 3, 1, 0), (1, S, 4, 0, 0)]) == [sq.APPLY] * 3
    assert s.channels[1].confirmed and s.channels[1].next_seq == 4
    assert s.gaps == 0


def test_a_jump_is_a_gap_and_a_late_packet_fills_it():
    s = sq.Sequencer()
    run(s, [(1, S, 1, 1, 0)])
    assert s.packet(1, S, 5, 1, 0) == sq.APPLY and s.gap == (2, 5)
    assert s.missing_messages == 3
    assert s.packet(1, S, 2, 2, 0) == sq.FILL and s.recovered_messages == 2
    assert s.packet(1, S, 2, 2, 0) == sq.DUP and s.duplicates == 1


def test_second_copy_of_every_packet_is_a_duplicate():
    s = sq.Sequencer()
    modes = run(s, [(1, S, 1, 3, 0), (1, S, 1, 3, 0), (1, S, 4, 1, 0), (1, S, 4, 1, 0)])
    assert modes == [sq.APPLY, sq.DUP, sq.APPLY, sq.DUP] and s.gaps == 0


def test_one_forged_datagram_with_a_new_session_is_held_and_changes_nothing():
    s = sq.Sequencer(confirm_packets=3)
    run(s, [(1, S, n, 1, 0) for n in range(1, 5)])
    assert s.packet(1, 0xFFFFFFFF, 1, 0, 0) == sq.HOLD
    assert run(s, [(1, S, n, 1, 0) for n in range(5, 9)]) == [sq.APPLY] * 4
    assert s.restarts == 0 and s.gaps == 0 and s.channels[1].session == S


def test_one_forged_datagram_with_a_huge_seq_is_held_and_reports_no_gap():
    s = sq.Sequencer(confirm_packets=3)
    run(s, [(1, S, n, 1, 0) for n in range(1, 5)])
    assert s.packet(1, S, 2 ** 63, 0, 0) == sq.HOLD
    assert run(s, [(1, S, 5, 1, 0)]) == [sq.APPLY]
    assert s.missing_messages == 0 and s.channels[1].next_seq == 6


def test_a_restart_is_accepted_after_enough_consistent_packets_and_loses_nothing():
    s = sq.Sequencer(confirm_packets=3)
    run(s, [(1, S, n, 1, 0) for n in range(1, 5)])
    assert run(s, [(1, S + 1, 1, 2, 0), (1, S + 1, 3, 1, 0)]) == [sq.HOLD, sq.HOLD]
    assert s.packet(1, S + 1, 4, 1, 0, "third") == sq.RELEASE
    assert [p for p in s.released] == [(1, 2), (3, 1), "third"]
    assert s.restarts == 1 and s.restarted and s.gaps == 0
    assert s.channels[1].session == S + 1 and s.channels[1].next_seq == 5


def test_a_restart_after_end_of_session_is_accepted_at_once():
    s = sq.Sequencer(confirm_packets=3)
    run(s, [(1, S, 1, 1, 0), (1, S, 2, 1, 0), (1, S, 3, 0, 1)])
    assert s.packet(1, S + 5, 1, 1, 0) == sq.APPLY and s.restarts == 1


def test_an_older_session_is_stale_once_the_stream_is_confirmed():
    s = sq.Sequencer(confirm_packets=2)
    run(s, [(1, S, 1, 1, 0), (1, S, 2, 1, 0)])
    assert s.packet(1, S - 1, 9, 1, 0) == sq.STALE and s.stale_session_packets == 1


def test_a_forged_first_contact_is_replaced_by_the_real_stream():
    s = sq.Sequencer(confirm_packets=3)
    assert s.packet(1, 0xFFFFFFFF, 2 ** 62, 0, 0) == sq.APPLY   # nothing to protect yet
    modes = run(s, [(1, S, n, 1, 0) for n in range(10, 13)])
    assert modes == [sq.HOLD, sq.HOLD, sq.RELEASE]
    assert s.channels[1].session == S and s.channels[1].next_seq == 13


def test_channels_are_independent():
    s = sq.Sequencer()
    run(s, [(1, S, 1, 1, 0), (2, S, 100, 1, 0), (1, S, 2, 1, 0), (2, S, 101, 1, 0)])
    assert s.gaps == 0 and s.channels[2].next_seq == 102


def test_forged_datagrams_that_never_continue_hold_one_payload_at_a_time():
    s = sq.Sequencer(confirm_packets=3)
    run(s, [(1, S, 1, 1, 0)])
    for n in range(1000):
        assert s.packet(1, S + 1 + n, 1, 1, 0, n) == sq.HOLD
    assert len(s.channels[1].cand_held) == 1 and s.restarts == 0


def test_confirm_packets_is_bounded_by_what_can_be_held():
    import pytest
    with pytest.raises(ValueError):
        sq.Sequencer(confirm_packets=sq.MAX_HELD_PACKETS + 1)


def test_the_second_copy_of_an_end_of_session_packet_is_a_duplicate():
    s = sq.Sequencer()
    run(s, [(1, S, 1, 1, 0)])
    assert run(s, [(1, S, 2, 0, 1), (1, S, 2, 0, 1)]) == [sq.APPLY, sq.DUP]
