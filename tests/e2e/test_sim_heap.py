"""`spotty sim --heapsize`: any scenario under a GC-heap budget, with a plain verdict."""

import json

import pytest

from host_tools import cli
from host_tools.bench.workload import CONFIG, visits


@pytest.fixture
def one_visit(tmp_path):
    path = tmp_path / "visit.json"
    path.write_text(json.dumps({"config": CONFIG, "events": visits(1), "until": 3.5}))
    return str(path)


def test_a_roomy_heap_is_reported_as_enough(capsys, one_visit):
    assert cli.main(["sim", one_visit, "--install", "--heapsize", "512K"]) == 0
    out = capsys.readouterr().out
    assert "music started on Bathroom" in out
    assert "ran within a 512K GC heap" in out


def test_a_heap_too_small_fails_the_run_and_says_why(capsys, one_visit):
    assert cli.main(["sim", one_visit, "--install", "--heapsize", "24K"]) == 1
    err = capsys.readouterr().err
    assert "ran out of memory with a 24K heap" in err and "MemoryError" in err


@pytest.mark.parametrize("bad", ["lots", "0K", "88KB", "8K"])
def test_a_bad_heapsize_is_refused_before_anything_runs(capsys, bad):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["sim", "no-such-scenario.json", "--heapsize", bad])
    assert exit_.value.code == 2
    assert "--heapsize" in capsys.readouterr().err
