"""device/store.py under the real MicroPython: atomic writes survive kill -9."""

import json
import os
import random
import signal
import subprocess
import time

from host_tools.sim.runtime import micropython_env, micropython_path, run_micropython

WRITER = """
import store
n = 0
while True:
    n += 1
    store.save_json("config.json", {"n": n, "pad": "x" * 4000})
"""

LOADER = """
import store
print(store.load_json("config.json", {"default": True}))
"""


def load_under_micropython(cwd):
    proc = run_micropython(["-c", LOADER], cwd=cwd, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout
    return proc.stdout.strip()


def test_kill_9_during_writes_always_leaves_a_whole_file(tmp_path):
    rng = random.Random(11)
    last = 0
    for _ in range(15):
        proc = subprocess.Popen([micropython_path(), "-c", WRITER], cwd=tmp_path,
                                env=micropython_env(), stdout=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        content = json.loads((tmp_path / "config.json").read_text())  # never torn
        assert content["pad"] == "x" * 4000 and content["n"] >= 1
        last = content["n"]
    assert last > 10  # the writer really was writing when it was cut


def test_missing_corrupt_and_stale_temp_files(tmp_path):
    assert load_under_micropython(tmp_path) == "({'default': True}, 'missing')"
    (tmp_path / "config.json").write_text('{"timeout_s": 6')
    out = load_under_micropython(tmp_path)
    assert out.startswith("({'default': True}, 'corrupt: "), out
    # A cut after the temp file was written but before the rename: the old file stands.
    (tmp_path / "config.json").write_text('{"timeout_s": 60}')
    (tmp_path / "config.json.tmp").write_text('{"timeout_s": 9')
    assert load_under_micropython(tmp_path) == "({'timeout_s': 60}, None)"
