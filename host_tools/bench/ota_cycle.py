"""The heap a whole OTA cycle needs, as the device lives it: idle with the shadow link up,
an update is pushed (desired.ota), downloaded over HTTPS, verified, staged, and the board
reboots into it and reports it applied. The firmware runs as .mpy from its flash."""

import itertools
import re
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

from ..common.devicepath import DEVICE_DIR
from ..ota import bundles
from ..sim import runner as sim
from ..spotify.mock import MockSpotify
from .workload import CONFIG

_VERSION = re.compile(r'^VERSION = "([^"]+)"$', re.M)


def _release(root: Path) -> tuple[str, str, Path]:
    """(running version, new version, a copy of the firmware that says the new one)."""
    app = (DEVICE_DIR / "app.py").read_text()
    match = _VERSION.search(app)
    if match is None:
        raise RuntimeError("app.VERSION not found: update host_tools/bench/ota_cycle.py")
    old = match.group(1)
    new = old + "-bench"
    source = root / "new"
    shutil.copytree(DEVICE_DIR, source, ignore=shutil.ignore_patterns("__pycache__"))
    (source / "app.py").write_text(_VERSION.sub('VERSION = "%s"' % new, app, count=1))
    return old, new, source


class OtaCycleProbe:
    """works(heapsize): does the whole update cycle succeed under that -X heapsize?"""

    def __init__(self):
        self._stack = ExitStack()
        self._names = itertools.count(1)

    def __enter__(self) -> "OtaCycleProbe":
        from ..aws.iot_local import IotLocal
        from ..ota.server import OtaServer

        stack = self._stack
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="spotty-ota-")))
        self.old, self.new, source = _release(root)
        key_path, pub_path = bundles.keygen(root / "keys")
        www = root / "www"
        bundles.build(source, self.new, key_path, www / "new.bundle")
        self.bundle = www / "new.bundle"
        self.pub = pub_path.read_bytes()
        self.iot = stack.enter_context(IotLocal())
        self.server = stack.enter_context(OtaServer(www))
        self.keys = root / "things"
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def works(self, heapsize: str) -> bool:
        from ..ota.push import push

        name = "ota-heap-%d" % next(self._names)
        files = self.iot.issue_thing(name, self.keys / name)
        target = sim.IotTarget(self.iot.mqtt_host, self.iot.mqtt_port, name,
                               files.ca_der.read_bytes(), files.cert_der.read_bytes(),
                               files.key_der.read_bytes(), self.iot.endpoint_url)
        url = self.server.url_for(self.bundle.name)
        pushed = []

        def on_event(event):
            if event["ev"] == "shadow_up" and not pushed:
                pushed.append(push(name, url, self.bundle, self.iot.endpoint_url))

        scenario = sim.validate_scenario({"config": CONFIG, "events": [], "until": 12.0})
        with MockSpotify() as mock:
            result = sim.run(scenario, sim.SpotifyTarget(mock.url, mock.ca.cert_der),
                             heapsize=heapsize, iot=target, install_firmware=True,
                             files={"ota/pub.bin": self.pub,
                                    "ca/ota/serve.der": self.server.ca_der},
                             on_event=on_event, max_reboots=3)
        versions = [e.get("version") for e in result.named("ready")]
        return (versions == [self.old, self.new] and not result.named("crash")
                and not any("MemoryError" in line for line in result.console))
