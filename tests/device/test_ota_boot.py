"""device/ota/boot.py under the real MicroPython, on a flash directory laid out by hand:
which files an update replaces, moves aside and brings back, and the boot counting."""

import json

import pytest

from host_tools.ota import bundles as ota
from host_tools.sim.runtime import run_micropython

DRIVER = """
from ota import boot

class Board:
    def reset(self):
        raise SystemExit(3)

try:
    print("BOOT", boot.run(Board()))
except SystemExit:
    print("BOOT reset")
"""


@pytest.fixture(scope="module")
def signing(tmp_path_factory):
    key_path, pub_path = ota.keygen(tmp_path_factory.mktemp("keys"))
    return ota.load_private_key(key_path), pub_path.read_bytes()


def lay_out(flash, files):
    for rel, data in files.items():
        (flash / rel).parent.mkdir(parents=True, exist_ok=True)
        (flash / rel).write_bytes(data if isinstance(data, bytes) else data.encode())


def stage(flash, signing, files, version="2.0", counter=None):
    key, pub = signing
    data = ota.pack(sorted((k, v.encode()) for k, v in files.items()), version, key, counter)
    manifest_bytes, signature, contents = ota.split(data)
    offset = 0
    for entry in json.loads(manifest_bytes)["files"]:
        piece = contents[offset:offset + entry["size"]]
        lay_out(flash / "ota" / "staged", {entry["path"]: piece})
        offset += entry["size"]
    lay_out(flash, {"ota/staged/manifest.sig": signature,
                    "ota/staged/manifest.json": manifest_bytes, "ota/pub.bin": pub})


def boot(flash):
    # Beside the flash, not in it: a script's directory comes first on the import path,
    # and this flash's ota/ holds only data.
    driver = flash.parent / "driver.py"
    driver.write_text(DRIVER)
    proc = run_micropython([str(driver)], cwd=flash, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [line[5:] for line in proc.stdout.splitlines() if line.startswith("BOOT ")][-1]


def tree(flash, under=""):
    root = flash / under
    return {p.relative_to(root).as_posix(): p.read_text()
            for p in sorted(root.rglob("*")) if p.is_file()
            and not p.relative_to(root).as_posix().startswith("ota/")}


def flash_dir(tmp_path):
    flash = tmp_path / "flash"
    flash.mkdir()
    return flash


def state(flash):
    return json.loads((flash / "ota" / "state.json").read_text())


def test_swap_moves_aside_twins_old_modules_and_old_roots(tmp_path, signing):
    flash = flash_dir(tmp_path)
    old = {"app.py": "old app source", "util.mpy": "old util", "gone.mpy": "old only",
           "stray.mpy": "not ours", "main.py": "main", "secrets.json": "{}",
           "ca/spotify/a.der": "old a", "ca/iot/b.der": "old b", "ca/flat.der": "before lists"}
    lay_out(flash, old)
    lay_out(flash, {"ota/installed.json": json.dumps(["app.py", "util.mpy", "gone.mpy"]),
                       "ota/state.json": json.dumps({"version": "1.0"})})
    stage(flash, signing, {"app.mpy": "new app", "util.mpy": "new util", "main.py": "new main",
                           "ca/spotify/a.der": "new a", "ca/ota/c.der": "new c"})
    assert boot(flash) == "reset"
    assert tree(flash) == {"app.mpy": "new app", "util.mpy": "new util", "stray.mpy": "not ours",
                              "main.py": "main", "secrets.json": "{}",
                              "ca/spotify/a.der": "new a", "ca/ota/c.der": "new c"}
    assert tree(flash / "ota" / "previous") == {
        "app.py": "old app source", "util.mpy": "old util", "gone.mpy": "old only",
        "ca/spotify/a.der": "old a", "ca/iot/b.der": "old b", "ca/flat.der": "before lists"}
    got = state(flash)
    assert got["version"] == "2.0" and got["previous"] == "1.0" and got["trial"] is True
    assert not (flash / "ota" / "staged").exists()
    assert not (flash / "ota" / "journal.json").exists()

    # Three boots on trial without becoming healthy, then the old files come back.
    for boots in (1, 2, 3):
        assert boot(flash).startswith("{") and state(flash)["boots"] == boots
    assert boot(flash) == "reset"
    assert tree(flash) == old
    got = state(flash)
    assert got["version"] == "1.0" and got["report"]["status"] == "rolled_back"
    assert not (flash / "ota" / "previous").exists()
    assert "mode': 'normal'" in boot(flash)


def test_a_bundle_that_would_touch_the_owners_files_is_refused(tmp_path, signing):
    flash = flash_dir(tmp_path)
    lay_out(flash, {"app.mpy": "old", "secrets.json": "{}", "ota/state.json": json.dumps(
        {"version": "1.0", "pending": {"version": "2.0", "key": "k9"}})})
    stage(flash, signing, {"app.mpy": "new", "secrets.json": '{"wifi": "evil"}'})
    assert "mode': 'normal'" in boot(flash)
    assert tree(flash) == {"app.mpy": "old", "secrets.json": "{}"}
    got = state(flash)
    assert got["report"] == {"version": "2.0", "status": "refused", "reason": "bad_path",
                             "previous": "1.0"}
    assert got["done"] == "k9" and "pending" not in got


def test_a_swap_keeps_the_counter_and_an_older_bundle_is_refused_at_boot(tmp_path, signing):
    flash = flash_dir(tmp_path)
    lay_out(flash, {"app.mpy": "1.0", "ota/state.json": json.dumps({"version": "1.0"})})
    stage(flash, signing, {"app.mpy": "2.0"}, "2.0", counter=200)
    assert boot(flash) == "reset"
    got = state(flash)
    assert got["version"] == "2.0" and got["counter"] == 200 and got["counter_v"] == "2.0"
    # An older bundle, signed all the same (e.g. pushed with a leaked device key), staged:
    # refused at the swap, and the newer version goes on running.
    lay_out(flash, {"ota/state.json": json.dumps(dict(
        got, trial=False, pending={"version": "1.5", "key": "k7"}))})
    stage(flash, signing, {"app.mpy": "1.5"}, "1.5", counter=150)
    assert "mode': 'normal'" in boot(flash)
    assert tree(flash) == {"app.mpy": "2.0"}
    got = state(flash)
    assert got["report"] == {"version": "1.5", "status": "refused", "reason": "downgrade",
                             "previous": "2.0"}
    assert got["counter"] == 200 and got["done"] == "k7"


def test_an_unreadable_journal_puts_the_saved_files_back(tmp_path):
    flash = flash_dir(tmp_path)
    lay_out(flash, {"app.mpy": "half new", "ota/previous/app.mpy": "old",
                       "ota/journal.json": "{torn", "ota/state.json": json.dumps(
                           {"version": "2.0", "previous": "1.0"})})
    assert boot(flash) == "reset"
    assert tree(flash) == {"app.mpy": "old"}
    assert not (flash / "ota" / "journal.json").exists()


def test_safe_mode_after_repeated_crashes(tmp_path):
    flash = flash_dir(tmp_path)
    lay_out(flash, {"ota/state.json": json.dumps({"version": "1.0", "crashes": 10})})
    assert "mode': 'safe'" in boot(flash)


LEFT_BEHIND = """
import gc
from ota import boot

class Board:
    def reset(self):
        raise SystemExit(3)

gc.collect()
before = gc.mem_alloc()
print("BOOT", boot.run(Board())["mode"])
gc.collect()
print("LEFT", gc.mem_alloc() - before)
"""


def heap_left_by_boot(flash) -> tuple[str, int]:
    driver = flash.parent / "left.py"
    driver.write_text(LEFT_BEHIND)
    proc = run_micropython([str(driver)], cwd=flash, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    return lines["BOOT"], int(lines["LEFT"])


def test_a_boot_without_work_leaves_the_swap_machinery_unloaded(tmp_path):
    """Its code is dropped after use, but the names it interned stay for good: a boot
    with nothing to do must not load it at all."""
    quiet = flash_dir(tmp_path)
    lay_out(quiet, {"ota/state.json": json.dumps({"version": "1.0", "crashes": 0})})
    after_crash = tmp_path / "after-crash"
    after_crash.mkdir()
    lay_out(after_crash, {"ota/state.json": json.dumps({"version": "1.0", "crashes": 1})})
    mode, quiet_left = heap_left_by_boot(quiet)
    assert mode == "normal"
    mode, crash_left = heap_left_by_boot(after_crash)
    assert mode == "normal"  # one crash is not yet safe mode, but it is work for ota.apply
    assert quiet_left < 1024 < crash_left - quiet_left, (quiet_left, crash_left)
