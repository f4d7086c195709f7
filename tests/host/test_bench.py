"""The benchmark's bisection of the smallest working heap, with a fake session cycle."""

from host_tools.bench import sessions as bench


class FakeProbe:
    def __init__(self, threshold_kb, flaky_kb=()):
        self.threshold_kb = threshold_kb
        self.flaky_kb = set(flaky_kb)  # fail by chance (fragmentation) above the threshold
        self.tried = []

    def works(self, heapsize):
        kb = int(heapsize[:-1])
        self.tried.append(kb)
        return kb >= self.threshold_kb and kb not in self.flaky_kb


def test_the_smallest_working_heap_is_found_by_bisection():
    probe = FakeProbe(138)
    assert bench.min_heap_kb(probe) == 138
    assert len(probe.tried) <= 12


def test_a_size_that_works_by_chance_below_failing_ones_is_not_the_answer():
    # The bisection ends at 142, but 146 just above it fails: the answer lies above that.
    probe = FakeProbe(140, flaky_kb={141, 146})
    assert bench.min_heap_kb(probe) == 147
    assert {146, 151, 155} <= set(probe.tried)
