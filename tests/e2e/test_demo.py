"""`spotty demo` (`make demo`): the story a newcomer reads, with the device's local clock."""

import re

from host_tools import cli


def test_the_demo_tells_each_event_with_the_local_clock(capsys):
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if re.match(r" +\d+\.\ds ", line)]
    ready, motion = lines[0], lines[1]
    assert re.fullmatch(r" +0\.0s 21:59:40 CET +firmware \S+ ready", ready)
    assert re.fullmatch(r" +0\.\ds 21:59:4\d CET +motion detected", motion)
    (late,) = [line for line in lines if line.endswith("no music: it is quiet hours")]
    assert re.match(r" +2\d\.\ds 22:00:0\d CET ", late)  # obviously late in the evening
    assert "Spotify saw 5 API calls and 1 token refresh:" in out
