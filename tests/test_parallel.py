"""Thread count and the thread map used by releases."""

import pytest

from privagg.errors import PrivaggInputError
from privagg.parallel import default_threads, thread_map


def test_privagg_threads_caps_the_thread_count(monkeypatch):
    monkeypatch.setenv("PRIVAGG_THREADS", "1")
    assert default_threads() == 1
    monkeypatch.delenv("PRIVAGG_THREADS")
    assert default_threads() >= 1


@pytest.mark.parametrize("raw", ["0", "two", "-3"])
def test_a_bad_privagg_threads_is_refused_with_a_fix(monkeypatch, raw):
    monkeypatch.setenv("PRIVAGG_THREADS", raw)
    with pytest.raises(PrivaggInputError, match=rf"PRIVAGG_THREADS='{raw}' is not a positive integer. Fix: set it"):
        default_threads()


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_thread_map_keeps_order(threads):
    assert thread_map(lambda x: x * x, range(20), threads) == [x * x for x in range(20)]
