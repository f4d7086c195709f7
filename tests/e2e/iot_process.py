"""`spotty iot-local` as a user runs it: its own process, found through its state directory."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from host_tools.aws.iot_local import ENDPOINTS_FILE
from host_tools.common.devicepath import REPO


class IotLocalProcess:
    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "host_tools.cli", "iot-local", "--state-dir",
             str(self.state_dir), "--http-port", "0", "--mqtt-port", "0"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 30
        endpoints = self.state_dir / ENDPOINTS_FILE
        while not endpoints.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("iot-local did not start:\n" + self._proc.stdout.read())
            time.sleep(0.1)
        info = json.loads(endpoints.read_text())
        self.endpoint_url = info["endpoint_url"]

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)  # it stops mosquitto on the way out
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
