"""Markers for tests that need a service from outside Python.

Locally such a test is skipped when the service is missing; in CI (CI=true) it runs
anyway and fails loudly, so a missing install step in .ci/run cannot pass unnoticed.
"""

import os
import shutil

import pytest

from host_tools.aws.broker import mosquitto_path
from host_tools.common.errors import SpottyError


def _have_mosquitto() -> bool:
    try:
        mosquitto_path()
    except SpottyError:
        return False
    return True


needs_mosquitto = pytest.mark.skipif(
    not os.environ.get("CI") and not _have_mosquitto(),
    reason="mosquitto is not installed (apt-get install mosquitto)",
)


def chromium_path() -> str | None:
    """Debian's chromium (the browser tests drive it headless)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


needs_chromium = pytest.mark.skipif(
    not os.environ.get("CI") and not chromium_path(),
    reason="chromium is not installed (apt-get install chromium)",
)
