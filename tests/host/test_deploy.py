import io
import json
from pathlib import Path

import pytest
from fakeboard import FakeBoard

from host_tools.board import deploy as deploying
from host_tools.board.transport import BoardError, MpremoteTransport, sha256_hex
from host_tools.board.unixport import UnixPortLink
from host_tools.common.devicepath import DEVICE_DIR
from host_tools.common.errors import SpottyError
from host_tools.sim.runtime import micropython_path

SOURCES = {
    "main.py": "import app\napp.main(None)\n",
    "app.py": "from core import x\n\ndef main(board):\n    return x.VALUE\n",
    "core/__init__.py": "",
    "core/x.py": "VALUE = 1\n",
    "board/__init__.py": "",
    "board/esp32.py": "NAME = 'esp32'\n",
    "board/sim.py": "NAME = 'sim'\n",
    "__pycache__/junk.py": "JUNK = 1\n",
}
DEPLOYED = {
    "main.py", "app.mpy", "core/__init__.mpy", "core/x.mpy", "board/__init__.mpy",
    "board/esp32.mpy",
}
XTENSAWIN = 10  # mpy-cross's architecture number, in the header's third byte


@pytest.fixture
def device(tmp_path) -> Path:
    root = tmp_path / "device"
    for rel, text in SOURCES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def deploy_to(board, device: Path) -> tuple[deploying.DeployReport, str]:
    out = io.StringIO()
    report = deploying.deploy(board, device, out)
    return report, out.getvalue()


# -- compiling -----------------------------------------------------------------------


def test_compiles_every_module_but_the_sim_board_and_keeps_main_as_source(device, tmp_path):
    files = deploying.compile_firmware(device, tmp_path / "build")
    assert set(files) == DEPLOYED
    assert files["main.py"] == SOURCES["main.py"].encode()
    assert all(files[p].startswith(b"M\x06") for p in DEPLOYED - {"main.py"})
    assert (tmp_path / "build" / "core" / "x.mpy").read_bytes() == files["core/x.mpy"]


def test_compiles_for_the_esp32(device, tmp_path):
    (device / "fast.py").write_text(
        "import micropython\n\n@micropython.native\ndef f():\n    return 1\n"
    )
    files = deploying.compile_firmware(device, tmp_path / "build")
    assert files["fast.mpy"][2] >> 2 == XTENSAWIN


def test_output_does_not_depend_on_where_the_checkout_lives(device, tmp_path):
    elsewhere = tmp_path / "other" / "checkout" / "device"
    elsewhere.parent.mkdir(parents=True)
    device.rename(elsewhere)
    first = deploying.compile_firmware(elsewhere, tmp_path / "b1")
    assert deploying.compile_firmware(elsewhere, tmp_path / "b2") == first
    assert b"core.x" in first["core/x.mpy"]  # tracebacks name the module
    assert str(tmp_path).encode() not in b"".join(first.values())


def test_a_syntax_error_names_the_module(device, tmp_path):
    (device / "core" / "x.py").write_text("def broken(:\n")
    with pytest.raises(SpottyError, match="mpy-cross failed on core/x.py"):
        deploying.compile_firmware(device, tmp_path / "build")


def test_the_real_firmware_compiles(tmp_path):
    files = deploying.compile_firmware(DEVICE_DIR, tmp_path)
    assert "main.py" in files and "app.mpy" in files
    assert not any(p.startswith("board/sim") for p in files)
    assert not any(p.endswith(".py") for p in files if p != "main.py")


def test_firmware_sources_leave_out_the_sim_board_and_caches(device):
    assert deploying.firmware_sources(device) == [
        "app.py", "board/__init__.py", "board/esp32.py", "core/__init__.py", "core/x.py",
        "main.py",
    ]
    (device / "boot.py").write_text("# boot\n")
    files = deploying.compile_firmware(device)
    assert files["boot.py"] == b"# boot\n"  # run from source at boot, like main.py


def test_an_empty_tree_is_refused(tmp_path):
    with pytest.raises(SpottyError, match="no firmware modules"):
        deploying.compile_firmware(tmp_path)


def test_an_ota_bundle_carries_exactly_the_bytes_a_deploy_writes(device, tmp_path):
    ota = pytest.importorskip("host_tools.ota.bundles")
    board = FakeBoard()
    deploy_to(board, device)
    key, public = ota.keygen(tmp_path / "keys")
    ota.build(device, "1.0", key, tmp_path / "fw.spota")
    manifest = ota.read_manifest(tmp_path / "fw.spota", public)
    _, _, contents = ota.split((tmp_path / "fw.spota").read_bytes())
    bundled, offset = {}, 0
    for entry in manifest["files"]:
        bundled[entry["path"]] = contents[offset:offset + entry["size"]]
        offset += entry["size"]
    assert bundled == {path: board.files[path] for path in DEPLOYED}


# -- progress ------------------------------------------------------------------------


def test_progress_bar():
    out = io.StringIO()
    bar = deploying.Progress(out, 10, width=10)
    for name in ["a.mpy", "b.mpy", "c.mpy", "d.mpy", "app.mpy"]:
        bar.step(name)
    assert out.getvalue().splitlines()[-1] == "[#####.....] 5/10 app.mpy"
    assert out.getvalue().splitlines()[0] == "[#.........] 1/10 a.mpy"


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_redraws_in_place_on_a_terminal():
    out = Tty()
    bar = deploying.Progress(out, 2, width=4)
    bar.step("a.mpy")
    bar.step("b.mpy")
    assert out.getvalue() == "\r\x1b[K[##..] 1/2 a.mpy\r\x1b[K[####] 2/2 b.mpy\n"


# -- deploying -----------------------------------------------------------------------


def test_first_deploy_copies_everything_main_last_and_records_a_manifest(device):
    board = FakeBoard()
    report, out = deploy_to(board, device)
    assert set(report.copied) == DEPLOYED
    assert report.removed == [] and report.unchanged == []
    assert board.writes[len(DEPLOYED) - 1] == "main.py"
    assert board.writes[-1] == deploying.MANIFEST
    lines = out.splitlines()
    assert lines[0] == "[###.................] 1/6 app.mpy"
    assert lines[5] == "[####################] 6/6 main.py"
    assert lines[-1] == report.summary()
    manifest = json.loads(board.files[deploying.MANIFEST])
    assert manifest["files"]["core/x.mpy"] == sha256_hex(board.files["core/x.mpy"])


def test_a_second_deploy_copies_nothing_and_a_change_copies_one_file(device):
    board = FakeBoard()
    deploy_to(board, device)
    writes = len(board.writes)
    report, out = deploy_to(board, device)
    assert report.copied == [] and set(report.unchanged) == DEPLOYED
    assert out.splitlines() == [report.summary()]
    assert len(board.writes) == writes  # not even the manifest: flash wears

    (device / "core" / "x.py").write_text("VALUE = 2\n")
    report, _ = deploy_to(board, device)
    assert report.copied == ["core/x.mpy"]


def test_stale_firmware_goes_but_user_data_and_foreign_files_stay(device):
    keep = {
        "secrets.json": b'{"wifi_password": "x"}',
        "token.json": b"{}",
        "config.json": b"{}",
        "device.json": b"{}",
        "ca/amazon-root-ca-1.der": b"\x30\x82",
        "iot/cert.der": b"\x30\x82",
        "iot/key.der": b"\x30\x82",
        "ota/pub.bin": bytes(64),
        "ota/staged/app.mpy": b"M\x06",  # an update in waiting is not ours to judge
        "boot.py": b"# the owner's\n",
        "lib/helper.mpy": b"M\x06",
        "notes.txt": b"hello",
    }
    stale = {
        "app.py": b"print('old source would shadow app.mpy')\n",
        "core/removed.mpy": b"M\x06",
        "core/x.py": b"VALUE = 0\n",
        "app.mpy.tmp": b"M\x06",
        "gone.mpy": b"M\x06",
        deploying.MANIFEST: json.dumps({"files": {"gone.mpy": "00"}}).encode(),
    }
    board = FakeBoard({**keep, **stale})
    report, out = deploy_to(board, device)
    assert sorted(report.removed) == sorted(set(stale) - {deploying.MANIFEST})
    for path, data in keep.items():
        assert board.files[path] == data
    assert set(board.files) == set(keep) | DEPLOYED | {deploying.MANIFEST}
    assert "removed app.py" in out


def test_a_copy_that_does_not_arrive_intact_fails_the_deploy(device):
    board = FakeBoard()
    board.corrupt.add("core/x.mpy")
    with pytest.raises(SpottyError, match="differ on the board: core/x.mpy"):
        deploy_to(board, device)
    assert deploying.MANIFEST not in board.files


# -- the real transport's snippets, on the MicroPython unix port ---------------------


@pytest.fixture
def unix_board(tmp_path):
    try:
        micropython_path()
    except SpottyError:
        pytest.skip("no micropython")
    flash = tmp_path / "flash"
    link = UnixPortLink(flash)
    yield MpremoteTransport(link, root=str(flash)), flash, link
    link.close()


def test_snippets_write_read_list_and_remove_on_micropython(unix_board):
    board, flash, _ = unix_board
    data = bytes(range(256)) * 9 + b"tail"  # several chunks, every byte value
    board.mkdir("core/deep")
    board.mkdir("core/deep")  # fine twice
    board.write_file("core/deep/m.mpy", data)
    board.write_file("core/deep/m.mpy", data[::-1])  # replaces
    board.write_file("top.json", b"{}")
    assert (flash / "core" / "deep" / "m.mpy").read_bytes() == data[::-1]
    assert board.read_file("core/deep/m.mpy") == data[::-1]
    listing = board.list_files()
    assert set(listing) == {"core/deep/m.mpy", "top.json"}  # no temp file left behind
    assert listing["core/deep/m.mpy"].sha256 == sha256_hex(data[::-1])
    assert listing["core/deep/m.mpy"].size == len(data)
    board.remove("top.json")
    board.remove("top.json")  # fine when already gone
    assert set(board.list_files()) == {"core/deep/m.mpy"}


def test_snippet_errors_are_clear(unix_board):
    board, _, _ = unix_board
    with pytest.raises(FileNotFoundError):
        board.read_file("missing.json")
    with pytest.raises(BoardError, match="cannot write nodir/x.mpy"):
        board.write_file("nodir/x.mpy", b"x")
    with pytest.raises(BoardError, match="ZeroDivisionError"):
        board.exec("1/0")


def test_deploy_over_the_mpremote_transport(unix_board, device):
    board, flash, _ = unix_board
    (flash / "secrets.json").write_text("{}")
    (flash / "app.py").write_text("stale = True\n")
    report, _ = deploy_to(board, device)
    assert set(report.copied) == DEPLOYED and report.removed == ["app.py"]
    assert (flash / "core" / "x.mpy").exists() and not (flash / "app.py").exists()
    assert (flash / "secrets.json").read_text() == "{}"
    assert board.exec("import app\nprint(app.main(None))") == "1\n"  # packages of .mpy import
    again, _ = deploy_to(board, device)
    assert again.copied == [] and again.removed == []


def test_soft_reset_leaves_the_raw_repl_so_main_py_runs(unix_board):
    board, _, link = unix_board
    board.soft_reset()
    assert link.serial.written == b"\r\x02\x04"


def test_listing_lines_keep_names_with_spaces():
    from host_tools.board.transport import RemoteFile, parse_listing

    text = "F 3 %s my notes.txt\r\nF 0 %s core/a.mpy\r\nnoise\r\n" % ("a" * 64, "b" * 64)
    assert parse_listing(text) == {
        "my notes.txt": RemoteFile(3, "a" * 64),
        "core/a.mpy": RemoteFile(0, "b" * 64),
    }


def test_opening_a_port_that_is_not_there_is_a_clear_error(tmp_path):
    with pytest.raises(BoardError, match="ttyNOPE does not exist: is the board plugged in"):
        MpremoteTransport.open(str(tmp_path / "ttyNOPE"))
