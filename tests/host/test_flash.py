from pathlib import Path

import pytest

from host_tools.board import flash as flashing
from host_tools.common.errors import SpottyError

PORT = "/dev/ttyUSB0"


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "ESP32_GENERIC-20250415-v1.25.0.bin"
    path.write_bytes(bytes([0xE9]) + b"\x03\x02\x20" + bytes(1020))
    return path


class Recorder:
    def __init__(self, fail_on: str | None = None):
        self.calls: list[list[str]] = []
        self.fail_on = fail_on

    def __call__(self, argv: list[str]) -> None:
        self.calls.append(argv)
        if self.fail_on in argv:
            raise SpottyError("esptool: A fatal error occurred: Failed to connect")


def always(_port):
    return True


def test_erases_then_writes_at_0x1000_for_the_classic_esp32(image):
    run = Recorder()
    flashing.flash(PORT, image, run=run, exists=always)
    common = ["--chip", "esp32", "--port", PORT, "--baud", "460800"]
    assert run.calls == [
        common + ["erase-flash"],
        common + ["write-flash", "0x1000", str(image)],
    ]


def test_newer_chips_take_the_image_at_zero_and_the_baud_is_passed_on(image):
    run = Recorder()
    flashing.flash("COM5", image, chip="esp32s3", baud=115200, run=run, exists=always)
    common = ["--chip", "esp32s3", "--port", "COM5", "--baud", "115200"]
    assert run.calls == [
        common + ["erase-flash"],
        common + ["write-flash", "0x0", str(image)],
    ]


def test_a_missing_image_is_refused_before_esptool_runs(tmp_path):
    run = Recorder()
    with pytest.raises(SpottyError, match="not found.*micropython.org/download"):
        flashing.flash(PORT, tmp_path / "nope.bin", run=run, exists=always)
    assert run.calls == []


@pytest.mark.parametrize("content", [b"", b"\x7fELF\x01\x01", b"<!DOCTYPE html>"])
def test_a_file_that_is_no_esp_image_is_refused(tmp_path, content):
    path = tmp_path / "firmware.bin"
    path.write_bytes(content)
    run = Recorder()
    with pytest.raises(SpottyError, match="not an ESP32 firmware image"):
        flashing.flash(PORT, path, run=run, exists=always)
    assert run.calls == []


def test_a_missing_port_is_refused_before_esptool_runs(image):
    run = Recorder()
    with pytest.raises(SpottyError, match="serial port /dev/ttyUSB0 does not exist"):
        flashing.flash(PORT, image, run=run, exists=lambda port: False)
    assert run.calls == []


def test_an_unknown_chip_is_refused(image):
    with pytest.raises(SpottyError, match="unknown chip 'esp8266'"):
        flashing.flash(PORT, image, chip="esp8266", run=Recorder(), exists=always)


def test_a_failed_erase_stops_before_writing(image):
    run = Recorder(fail_on="erase-flash")
    with pytest.raises(SpottyError, match="Failed to connect"):
        flashing.flash(PORT, image, run=run, exists=always)
    assert len(run.calls) == 1


def test_port_exists(tmp_path):
    device = tmp_path / "ttyFAKE0"
    device.touch()
    assert flashing.port_exists(str(device))
    assert flashing.port_exists("rfc2217://192.168.1.5:4000")
    assert not flashing.port_exists(str(tmp_path / "ttyNOPE"))


def test_real_esptool_failures_become_a_clear_error(tmp_path):
    with pytest.raises(SpottyError, match="esptool: Could not open"):
        flashing.run_esptool(
            ["--chip", "esp32", "--port", str(tmp_path / "ttyNOPE"), "erase-flash"]
        )


def test_an_esptool_usage_error_becomes_a_clear_error():
    with pytest.raises(SpottyError, match="esptool stopped with status 2"):
        flashing.run_esptool(["no-such-command"])
