"""What a user expects of any command-line tool: --version, help with defaults and an
example, choices listed, defaults from the environment, the one board found by itself,
shell completion, and a README that says what the help says."""

import argparse
import re
import shlex
import shutil
import subprocess

import pytest
from serial.tools.list_ports_common import ListPortInfo
from test_cli import Board, run

from host_tools import cli
from host_tools.board import commands as board_commands
from host_tools.board import transport as board_module
from host_tools.common import argparsing
from host_tools.common.devicepath import DEVICE_DIR, REPO

README = (REPO / "README.md").read_text()


def leaves(parser: argparse.ArgumentParser, path=()):
    """(command path, parser) of every subcommand that runs something."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from leaves(child, (*path, name))


def parses(command_line: str) -> argparse.Namespace:
    words = shlex.split(command_line)
    assert words[0] == "spotty", command_line
    return cli.build_parser().parse_args(words[1:])


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    tools = re.search(r'^version = "(.+)"', (REPO / "pyproject.toml").read_text(), re.M)[1]
    firmware = re.search(r'^VERSION = "(.+)"', (DEVICE_DIR / "app.py").read_text(), re.M)[1]
    assert capsys.readouterr().out == "spotty %s, firmware %s\n" % (tools, firmware)


def test_the_top_level_help_speaks_to_users(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "starts your Spotify music when someone walks into the room" in out
    assert "spotty demo " in out and "see it work, no hardware needed" in out
    for variable in (argparsing.THING_ENV, argparsing.PORT_ENV, argparsing.ENDPOINT_ENV):
        assert variable in out
    assert "exit codes: 0 done, 1 failed, 2 usage, 3 refused, 4 the device" in out
    for developer_word in ("argparse", "importable", "command table"):
        assert developer_word not in out


@pytest.mark.parametrize("path, parser", list(leaves(cli.build_parser())),
                         ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_each_command_shows_its_defaults_and_an_example_that_works(path, parser):
    text = parser.format_help()
    examples = text[text.index("\nexample") + 1:].splitlines()[1:]
    assert examples, path
    for example in examples:
        example = example.split("   #")[0].strip()
        if example.startswith("eval"):  # the completion example runs spotty in $(...)
            example = example.split('"$(')[1].split(')"')[0]
        assert parses(example).command == path[0]
    for action in parser._actions:
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            shown = re.sub(r"\s+", " ", text)
            assert "(default: %s)" % action.default in shown, (path, action.dest)
        if action.dest != "help":
            assert action.help, (path, action.dest)  # every option says what it is for


def test_chip_lists_its_choices(capsys):
    code = None
    with pytest.raises(SystemExit) as done:
        cli.main(["flash", "--firmware", "fw.bin", "--chip", "esp8266"])
    code = done.value.code
    err = capsys.readouterr().err
    assert code == 2 and "invalid choice: 'esp8266'" in err
    for chip in ("esp32", "esp32c3", "esp32c6", "esp32s2", "esp32s3"):
        assert "'%s'" % chip in err
    assert "--chip {esp32,esp32c3,esp32c6,esp32s2,esp32s3}" in cli.build_parser()._subparsers \
        ._group_actions[0].choices["flash"].format_help()


# -- defaults from the environment, and the one board connected --------------------------


@pytest.fixture
def boards(monkeypatch):
    opened = []

    def fake_open(port, baud=115200):
        opened.append(port)
        return Board()

    monkeypatch.setattr(board_module.MpremoteTransport, "open", staticmethod(fake_open))
    monkeypatch.setattr(board_commands, "FIRST_BOOT_S", 0.0)
    monkeypatch.delenv(argparsing.PORT_ENV, raising=False)
    return opened


def connected(monkeypatch, *ports) -> None:
    """The serial ports the system lists: (device, has a USB vendor/product id)."""
    infos = []
    for device, usb in ports:
        info = ListPortInfo(device, skip_link_detection=True)
        if usb:
            info.vid, info.pid = 0x10C4, 0xEA60  # a CP2102, as on many ESP32 boards
        infos.append(info)
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda *a, **k: infos)


def test_the_port_comes_from_spotty_port(capsys, boards, monkeypatch):
    monkeypatch.setenv(argparsing.PORT_ENV, "/dev/ttyUSB3")
    connected(monkeypatch, ("/dev/ttyUSB0", True))
    code, _, err = run(capsys, "deploy", "--no-reset")
    assert code == 0 and boards == ["/dev/ttyUSB3"] and "using the board" not in err
    code, _, _ = run(capsys, "deploy", "--no-reset", "--port", "/dev/ttyUSB1")
    assert boards[-1] == "/dev/ttyUSB1"  # the option wins


def test_the_one_board_connected_is_used(capsys, boards, monkeypatch):
    connected(monkeypatch, ("/dev/ttyS0", False), ("/dev/ttyACM0", True))
    code, _, err = run(capsys, "deploy", "--no-reset")
    assert code == 0 and boards == ["/dev/ttyACM0"]
    assert err == "using the board on /dev/ttyACM0, the one serial board connected\n"


def test_no_board_or_several_boards_is_a_usage_error(capsys, boards, monkeypatch):
    connected(monkeypatch, ("/dev/ttyS0", False))
    code, _, err = run(capsys, "deploy")
    assert (code, err) == (2, "spotty: no board found on a USB serial port: plug it in, or "
                              "name its port with --port or SPOTTY_PORT\n")
    connected(monkeypatch, ("/dev/ttyUSB0", True), ("/dev/ttyACM0", True))
    code, _, err = run(capsys, "hw-report")
    assert (code, err) == (2, "spotty: 2 serial boards are connected (/dev/ttyACM0, "
                              "/dev/ttyUSB0): choose one with --port or SPOTTY_PORT\n")
    assert boards == []


def test_flash_uses_the_one_board_connected(capsys, boards, monkeypatch, tmp_path):
    import esptool

    calls = []
    monkeypatch.setattr(esptool, "main", calls.append)
    image = tmp_path / "fw.bin"
    image.write_bytes(bytes([0xE9]) + bytes(15))
    connected(monkeypatch, ("/dev/ttyUSB0", True))
    code, _, err = run(capsys, "flash", "--firmware", str(image), "--no-deploy")
    assert code == 0 and [argv[3] for argv in calls] == ["/dev/ttyUSB0", "/dev/ttyUSB0"]


def test_a_shadow_command_needs_a_thing_from_the_option_or_the_environment(capsys, monkeypatch):
    monkeypatch.delenv(argparsing.THING_ENV, raising=False)
    with pytest.raises(SystemExit) as done:
        cli.main(["config", "get"])
    assert done.value.code == 2
    assert capsys.readouterr().err.endswith(
        "spotty config get: error: --thing is needed (or set SPOTTY_THING)\n")
    with pytest.raises(SystemExit) as done:
        cli.main(["provision", "--wifi-ssid", "Home", "--spotify-client-id", "ID"])
    assert done.value.code == 2
    assert "error: thing is needed (or set SPOTTY_THING)" in capsys.readouterr().err


def test_environment_defaults_fill_what_is_not_given(monkeypatch):
    monkeypatch.setenv(argparsing.THING_ENV, "bathroom")
    monkeypatch.setenv(argparsing.ENDPOINT_ENV, "http://127.0.0.1:8080")
    args = cli.build_parser().parse_args(["stats"])
    argparsing.apply_environment(args)
    assert (args.thing, args.endpoint_url) == ("bathroom", "http://127.0.0.1:8080")
    args = cli.build_parser().parse_args(["ota", "status", "--thing", "kitchen"])
    argparsing.apply_environment(args)
    assert args.thing == "kitchen"
    args = cli.build_parser().parse_args(["sim", "s.json"])  # the simulator's own thing
    argparsing.apply_environment(args)
    assert args.thing == "sim-bathroom"


# -- shell completion -------------------------------------------------------------------


def test_bash_completion_completes_commands_and_actions(capsys, tmp_path):
    assert cli.main(["completion", "bash"]) == 0
    script = tmp_path / "spotty.bash"
    script.write_text(capsys.readouterr().out)

    def complete(*words) -> list[str]:
        line = "spotty " + " ".join(words)
        probe = ('source %s; COMP_WORDS=(%s); COMP_CWORD=%d; COMP_LINE=%s; COMP_POINT=%d; '
                 '_shtab_spotty; printf "%%s\\n" "${COMPREPLY[@]}"' % (
                     shlex.quote(str(script)), line, len(words), shlex.quote(line), len(line)))
        result = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    assert "config" in complete("con") and "completion" in complete("com")
    assert complete("config", "un") == ["unset"]
    assert "--chip" in complete("flash", "--ch")


def test_zsh_completion(capsys):
    assert cli.main(["completion", "zsh"]) == 0
    script = capsys.readouterr().out
    assert script.startswith("#compdef spotty") and "provision" in script
    if shutil.which("zsh"):
        result = subprocess.run(["zsh", "-n"], input=script, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_completion_is_only_for_bash_and_zsh(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["completion", "fish"])
    assert done.value.code == 2 and "invalid choice: 'fish'" in capsys.readouterr().err


# -- the README says what the help says ---------------------------------------------------


def readme_commands() -> list[str]:
    """Every `spotty ...` line of the README's shell blocks, continuations joined, comments
    dropped; [optional parts] kept, placeholders (...) skipped."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.split(r" #| > | \| ", line)[0].strip()
            line = re.sub(r'^(eval "\$\(|\.venv/bin/|SPOTTY_\w+=\S+ )', "", line).rstrip(')"')
            if line.startswith("spotty ") and "..." not in line:
                commands.append(re.sub(r"[\[\]]", "", line))
    return commands


def test_every_command_in_the_readme_parses():
    commands = readme_commands()
    assert len(commands) >= 20
    for line in commands:
        if line == "spotty --version":
            continue
        parses(line)


def test_the_readme_lists_each_command_with_its_help():
    table = README[README.index("## The `spotty` command"):]
    sub = cli.build_parser()._subparsers._group_actions[0]
    for action in sub._choices_actions:
        assert "| `spotty %s` | %s |" % (action.dest, action.help) in table, action.dest
    for variable in (argparsing.THING_ENV, argparsing.PORT_ENV, argparsing.ENDPOINT_ENV):
        assert "`%s`" % variable in table


def test_the_readme_documents_every_json_event():
    table = README[README.index("**`--json`**"):README.index("**With the shadow link.**")]
    firmware = "\n".join(p.read_text() for p in DEVICE_DIR.rglob("*.py"))
    names = set(re.findall(r'log\.event\(\s*"(\w+)"', firmware)) | {"adopt", "reboot"}
    assert len(names) > 30
    for name in names:
        assert "`%s`" % name in table, name
