"""`spotty hw-report`'s figures measured by `make bench` on the unix port as the board:
the same snippets over the same raw-REPL protocol, with the firmware compiled on its
flash, a short visit fed to the simulated PIR, Spotify at the mock and AWS IoT at the
local stand-in. On the 32-bit interpreter the heap lines read as a board's would; the TLS
handshakes here are on loopback (a board's take about a second). The heap is the
ESP32's, so "free heap after boot" compares too."""

import io
import os
import tempfile
from pathlib import Path

from ..board import report
from ..board.transport import MpremoteTransport
from ..board.unixport import UnixPortLink
from ..sim import runner as sim
from ..spotify.mock import MockSpotify
from .workload import CONFIG

SESSION_S = 8.0
HEAP = "112K"  # what a stock ESP32 without PSRAM gives Python, once grown
_VISIT = [{"at": 0.5, "pir": 1}, {"at": 1.0, "pir": 0}]


def measure(heapsize: str | None = HEAP) -> dict:
    from ..aws.iot_local import IotLocal

    with tempfile.TemporaryDirectory(prefix="spotty-board-") as tmp, MockSpotify() as mock, \
            IotLocal() as iot:
        flash = Path(tmp) / "flash"
        flash.mkdir()
        sim.install(flash)
        files = iot.issue_thing("bench-board", Path(tmp) / "keys")
        scenario = sim.validate_scenario({"config": CONFIG, "events": _VISIT, "until": 3600,
                                          "device": {"glitch_ms": 100}})
        sim.prepare_flash(flash, scenario, sim.SpotifyTarget(mock.url, mock.ca.cert_der),
                          sim.IotTarget(iot.mqtt_host, iot.mqtt_port, "bench-board",
                                        files.ca_der.read_bytes(), files.cert_der.read_bytes(),
                                        files.key_der.read_bytes()))
        saved = os.environ.get("SPOTTY_SIM")
        os.environ["SPOTTY_SIM"] = str(flash / sim.SIM_FILE)  # the sim board's PIR events
        link = UnixPortLink(flash, heapsize)
        try:
            return report.collect(MpremoteTransport(link, root=str(flash)), SESSION_S,
                                  io.StringIO().write)
        finally:
            link.close()
            if saved is None:
                os.environ.pop("SPOTTY_SIM", None)
            else:
                os.environ["SPOTTY_SIM"] = saved
