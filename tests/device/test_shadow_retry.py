"""device/shadow.py under the real MicroPython with a stand-in MQTT client: a link that
fails, even out of memory, is closed, logged and tried again after the backoff, never
left dead (it is a task of its own: nothing else would start it again)."""

import json

from host_tools.sim.runtime import run_micropython

DRIVER = """
import asyncio
from cloud import LinkMemory
from shadow import ShadowLink

class Client:
    session_present = False
    sink = None

    def __init__(self, failures):
        self.failures = list(failures)
        self.connects = 0

    async def connect(self, clean=True):
        self.connects += 1
        if self.failures:
            raise self.failures.pop(0)

    async def subscribe_all(self, topics):
        return [qos for _, qos in topics]

    async def publish_json(self, topic, document):
        return 10

    async def receive(self, timeout_ms=None):
        await asyncio.sleep_ms(20)

    async def disconnect(self):
        pass

    def close(self):
        pass

client = Client([MemoryError("memory allocation failed"), OSError(104)])
link = ShadowLink(client, "bath", LinkMemory(), lambda desired: {}, lambda name: {})

async def main():
    asyncio.create_task(link.run())  # runs for ever, as on the board: watched for 4 s
    await asyncio.sleep_ms(4000)

asyncio.run(main())
print("CONNECTS", client.connects)
"""


def test_a_link_that_fails_even_out_of_memory_is_tried_again(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    proc = run_micropython([str(driver)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    errors = [e for e in events if e["ev"] == "error" and e["error"] == "shadow_link"]
    assert [(e["attempt"], "MemoryError" in e["detail"]) for e in errors] == [
        (1, True), (2, False)]
    assert any(e["ev"] == "shadow_up" for e in events)  # the third connect holds
    assert "CONNECTS 3" in proc.stdout
    assert "Task exception" not in proc.stdout + proc.stderr
