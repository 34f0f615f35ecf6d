"""The checker finds what it claims to find (it must not pass a log that lost data)."""

from checker import check, problems, value


def test_a_faithful_log_passes_and_each_fault_is_named():
    acked = {value("a", 0): (0, 0), value("a", 1): (0, 1), value("b", 0): (1, 0)}
    good = [(0, 0, value("a", 0)), (0, 1, value("a", 1)), (1, 0, value("b", 0))]
    assert problems(check(acked, good)) == {}
    assert check(acked, good[1:])["lost"] == [value("a", 0)]
    swapped = [(0, 0, value("a", 1)), (0, 1, value("a", 0)), (1, 0, value("b", 0))]
    report = check(acked, swapped)
    assert report["diverging"] == [value("a", 0), value("a", 1)]
    assert report["reordered"] == [("a", 0)]
    twice = good + [(1, 1, value("a", 1))]
    assert check(acked, twice)["duplicated"] == [value("a", 1)]
    stranger = good + [(1, 1, value("z", 0))]
    assert check(acked, stranger)["unexpected"] == [value("z", 0)]
    # A record that was sent but never acknowledged may be there.
    unacked = good + [(1, 1, value("b", 1))]
    assert problems(check(acked, unacked, sent=list(acked) + [value("b", 1)])) == {}
