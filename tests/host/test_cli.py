"""`spotty` subcommands through main([...]): exit codes and what the user reads.

Boards are FakeBoards behind a faked MpremoteTransport.open, esptool is faked at its
entry point, AWS IoT is moto (provisioning) or the local stand-in (the token push), and
Spotify is the mock with a scripted browser.
"""

import json
import os
import re
import socket
import stat
import subprocess
import sys
import webbrowser

import boto3
import pytest
from fakeboard import FakeBoard
from moto import mock_aws
from needs import needs_mosquitto
from test_spotify_login import STATE, Browser
from test_token_push import THING, TokenListener

from host_tools import cli
from host_tools.aws.iot_local import IotLocal
from host_tools.board import commands as board_commands
from host_tools.board import transport as board_module
from host_tools.board.transport import BoardError
from host_tools.common import errors
from host_tools.common.devicepath import REPO
from host_tools.ota import bundles as ota
from host_tools.spotify import login as sl
from host_tools.spotify.mock import MockSpotify

CLIENT_ID = "spotty-test-client"
SECRETS = {"SPOTTY_WIFI_PASSWORD": "correct horse battery"}
CLIENT_SECRET = "c0ffee-client-secret-0000"
SAVED_TOKEN = sl.SpotifyToken("AQD-saved-refresh-token", 1_760_000_000, CLIENT_ID, sl.SCOPES)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_not_shown(secrets, *texts) -> None:
    shown = "\n".join(texts)
    for secret in secrets:
        assert secret not in shown


class Board(FakeBoard):
    def __init__(self, files=None):
        super().__init__(files)
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def boards(monkeypatch):
    """MpremoteTransport.open hands out `boards.next` (or raises `boards.fail` first)."""

    class Boards:
        next = Board()
        opened: list[str] = []
        fail: list[Exception] = []

    def fake_open(port, baud=115200):
        Boards.opened.append(port)
        if Boards.fail:
            raise Boards.fail.pop(0)
        return Boards.next

    monkeypatch.setattr(board_module.MpremoteTransport, "open", staticmethod(fake_open))
    monkeypatch.setattr(board_commands, "FIRST_BOOT_S", 0.0)
    return Boards


# -- flash and deploy ----------------------------------------------------------------


@pytest.fixture
def esptool_calls(monkeypatch):
    import esptool

    calls = []
    monkeypatch.setattr(esptool, "main", lambda argv: calls.append(argv))
    return calls


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "ESP32_GENERIC-20250415-v1.25.0.bin"
    path.write_bytes(bytes([0xE9]) + bytes(1023))
    return path


@pytest.fixture
def port(tmp_path):
    path = tmp_path / "ttyUSB0"
    path.touch()
    return str(path)


def test_flash_erases_and_writes_micropython(capsys, esptool_calls, image, port, boards):
    code, out, _ = run(capsys, "flash", "--port", port, "--firmware", str(image), "--no-deploy")
    assert code == 0
    assert [argv[-1] for argv in esptool_calls] == ["erase-flash", str(image)]
    assert esptool_calls[1][:7] == ["--chip", "esp32", "--port", port, "--baud", "460800",
                                    "write-flash"]
    assert "provision it again" in out
    assert boards.opened == []


def test_flash_then_deploys_once_the_board_has_booted(capsys, esptool_calls, image, port, boards):
    boards.fail = [BoardError("no MicroPython REPL answered")]  # still booting
    code, out, _ = run(capsys, "flash", "--port", port, "--firmware", str(image),
                       "--chip", "esp32s3", "--baud", "115200")
    assert code == 0
    assert esptool_calls[1][:6] == ["--chip", "esp32s3", "--port", port, "--baud", "115200"]
    assert boards.opened == [port, port]
    assert {"main.py", "app.mpy"} <= set(boards.next.files)
    assert boards.next.resets == 1 and boards.next.closed
    assert "deployed:" in out


def test_flash_refuses_a_missing_image_before_esptool(capsys, esptool_calls, tmp_path, port):
    code, out, err = run(capsys, "flash", "--port", port, "--firmware", str(tmp_path / "x.bin"))
    assert code == 1 and esptool_calls == []
    assert err.startswith("spotty: firmware image") and "micropython.org/download" in err


def test_deploy_copies_the_firmware_and_resets(capsys, boards):
    code, out, _ = run(capsys, "deploy", "--port", "/dev/ttyUSB0")
    assert code == 0 and boards.opened == ["/dev/ttyUSB0"]
    assert "main.py" in boards.next.files and boards.next.resets == 1 and boards.next.closed
    assert out.splitlines()[-2].startswith("deployed: ")
    code, out, _ = run(capsys, "deploy", "--port", "/dev/ttyUSB0", "--no-reset")
    assert code == 0 and boards.next.resets == 1
    assert "0 copied" in out


def test_deploy_to_a_busy_port_is_a_clear_error(capsys, boards):
    boards.fail = [BoardError("cannot open /dev/ttyUSB0: is a serial monitor using it?")]
    code, out, err = run(capsys, "deploy", "--port", "/dev/ttyUSB0")
    assert code == 1 and err == "spotty: cannot open /dev/ttyUSB0: is a serial monitor using it?\n"


# -- provision ------------------------------------------------------------------------


@pytest.fixture
def aws(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        yield boto3.client("iot", region_name="eu-west-1")


@pytest.fixture
def saved_login(tmp_path):
    path = tmp_path / "login" / "spotify-token.json"
    sl.save_token(path, SAVED_TOKEN)
    return path


def provision(capsys, tmp_path, *extra) -> tuple[int, str, str]:
    return run(capsys, "provision", THING, "--port", "/dev/ttyUSB0", "--wifi-ssid", "Home",
               "--spotify-client-id", CLIENT_ID, "--region", "eu-west-1",
               "--certs-dir", str(tmp_path / "certs"), *extra)


@pytest.mark.filterwarnings("ignore:Parsed a serial number")  # Starfield's root has serial 0
def test_provision_writes_the_board_and_shows_no_secret(
        capsys, aws, boards, saved_login, tmp_path, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "settings.json").write_text(
        '{"spotify_device": "Bathroom", "tz": "Europe/Berlin", "quiet_end": "7:00"}')
    ota.keygen(tmp_path / "keys")
    code, out, err = provision(
        capsys, tmp_path, "--token-file", str(saved_login), "--config",
        str(tmp_path / "settings.json"), "--pir-pin", "4", "--glitch-ms", "150",
        "--ota-pubkey", str(tmp_path / "keys" / "ota_pub.bin"))
    assert code == 0, err
    files = boards.next.files
    secrets = json.loads(files["secrets.json"])
    assert secrets["wifi_password"] == SECRETS["SPOTTY_WIFI_PASSWORD"]
    assert "spotify_client_secret" not in secrets
    assert json.loads(files["token.json"]) == {"refresh_token": SAVED_TOKEN.refresh_token,
                                               "issued_at": SAVED_TOKEN.issued_at}
    assert json.loads(files["device.json"]) == {"pir_pin": 4, "glitch_ms": 150}
    assert json.loads(files["config.json"]) == {"spotify_device": "Bathroom", "quiet_end": "07:00",
                                                "tz": "CET-1CEST,M3.5.0,M10.5.0/3"}
    assert "tz: Europe/Berlin -> CET-1CEST,M3.5.0,M10.5.0/3" in out
    assert files["ota/pub.bin"] == (tmp_path / "keys" / "ota_pub.bin").read_bytes()
    assert boards.next.resets == 1 and boards.next.closed
    assert aws.describe_thing(thingName=THING)["thingName"] == THING
    assert "thing        bathroom-1 (created)" in out
    key = (tmp_path / "certs" / THING / "key.pem").read_text().splitlines()[1]
    assert_not_shown([*SECRETS.values(), SAVED_TOKEN.refresh_token, key], out, err)


@pytest.mark.filterwarnings("ignore:Parsed a serial number")
def test_provision_asks_for_the_wifi_password_without_echo(
        capsys, aws, boards, saved_login, tmp_path, monkeypatch):
    monkeypatch.delenv("SPOTTY_WIFI_PASSWORD", raising=False)
    prompts = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or "typed pw 123")
    code, out, err = provision(capsys, tmp_path, "--token-file", str(saved_login))
    assert code == 0, err
    assert prompts == ["Wi-Fi password for Home (empty for an open network): "]
    assert json.loads(boards.next.files["secrets.json"])["wifi_password"] == "typed pw 123"
    assert "device.json" not in boards.next.files
    assert_not_shown(["typed pw 123"], out, err)


def test_provision_refuses_a_login_for_another_app(capsys, boards, tmp_path, monkeypatch):
    path = tmp_path / "login.json"
    sl.save_token(path, sl.SpotifyToken("AQD-other", 1, "another-client", sl.SCOPES))
    monkeypatch.setenv("SPOTTY_WIFI_PASSWORD", SECRETS["SPOTTY_WIFI_PASSWORD"])
    code, out, err = provision(capsys, tmp_path, "--token-file", str(path))
    assert code == 3 and "is for client id another-client" in err
    assert boards.opened == []
    assert_not_shown(["AQD-other", SECRETS["SPOTTY_WIFI_PASSWORD"]], out, err)


def test_provision_without_any_spotify_login_says_how_to_get_one(
        capsys, aws, boards, tmp_path, monkeypatch):
    monkeypatch.setenv("SPOTTY_WIFI_PASSWORD", SECRETS["SPOTTY_WIFI_PASSWORD"])
    monkeypatch.delenv("SPOTIFY_REFRESH_TOKEN", raising=False)
    code, _, err = provision(capsys, tmp_path, "--token-file", str(tmp_path / "none.json"))
    assert code == 1 and "spotty spotify-login --client-id" in err
    assert boards.next.resets == 0


def test_provision_refuses_bad_settings_before_any_work(capsys, boards, tmp_path, monkeypatch):
    monkeypatch.setenv("SPOTTY_WIFI_PASSWORD", SECRETS["SPOTTY_WIFI_PASSWORD"])
    (tmp_path / "settings.json").write_text("[1, 2]")
    code, _, err = provision(capsys, tmp_path, "--config", str(tmp_path / "settings.json"))
    assert code == 3 and "must be a JSON object" in err
    code, _, err = provision(capsys, tmp_path, "--ota-pubkey", str(tmp_path / "missing.bin"))
    assert code == 1 and "cannot read" in err
    assert boards.opened == []


# -- spotify-login --------------------------------------------------------------------


@pytest.fixture
def mock(tmp_path):
    with MockSpotify(client_id=CLIENT_ID) as server:
        (tmp_path / "mock-ca.pem").write_bytes(server.ca.cert_pem)
        yield server


def login(capsys, mock, tmp_path, *extra) -> tuple[int, str, str]:
    return run(capsys, "spotify-login", "--port", "0", "--accounts-url", mock.url,
               "--accounts-ca", str(tmp_path / "mock-ca.pem"),
               "--token-file", str(tmp_path / "spotty" / "token.json"), *extra)


def secrets_of(mock) -> list[str]:
    (exchange,) = [r for r in mock.requests() if r["path"] == "/api/token"]
    return [mock.refresh_token, exchange["body"]["code"], exchange["body"]["code_verifier"]]


def test_spotify_login_saves_a_private_token_file(capsys, mock, tmp_path, monkeypatch):
    monkeypatch.setenv("SPOTTY_ENDPOINT_URL", "http://127.0.0.1:1")  # only for --thing
    browser = Browser(mock)
    monkeypatch.setattr(webbrowser, "open", browser)
    code, out, err = login(capsys, mock, tmp_path, "--client-id", CLIENT_ID)
    assert code == 0, err
    path = tmp_path / "spotty" / "token.json"
    saved = json.loads(path.read_text())
    assert saved["refresh_token"] == mock.refresh_token and saved["client_id"] == CLIENT_ID
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "Spotify login saved in %s" % path in out
    assert browser.urls[0] in out
    assert_not_shown(secrets_of(mock), out, err)

    # Again, with the client id taken from the saved login.
    code, out, err = login(capsys, mock, tmp_path)
    assert code == 0, err
    assert json.loads(path.read_text())["refresh_token"] == mock.refresh_token


def test_a_client_secret_in_the_environment_stops_login_and_provision(
        capsys, boards, saved_login, tmp_path, monkeypatch):
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("SPOTTY_WIFI_PASSWORD", SECRETS["SPOTTY_WIFI_PASSWORD"])
    opened = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    with MockSpotify(client_id=CLIENT_ID) as mock:
        code, out, err = login(capsys, mock, tmp_path, "--client-id", CLIENT_ID)
        assert mock.requests() == []
    assert code == 2 and "SPOTIFY_CLIENT_SECRET is set" in err and "PKCE" in err
    assert opened == [] and not (tmp_path / "spotty" / "token.json").exists()
    code, out2, err2 = provision(capsys, tmp_path, "--token-file", str(saved_login))
    assert code == 2 and "SPOTIFY_CLIENT_SECRET is set" in err2
    assert boards.opened == []
    assert_not_shown([CLIENT_SECRET], out, err, out2, err2)


def test_spotify_login_refused_in_the_browser(capsys, mock, tmp_path, monkeypatch):
    monkeypatch.setattr(webbrowser, "open", Browser(mock, {"error": "access_denied",
                                                           "state": STATE}))
    code, _, err = login(capsys, mock, tmp_path, "--client-id", CLIENT_ID)
    assert code == 1 and "refused in the browser" in err
    assert not (tmp_path / "spotty" / "token.json").exists()


def test_spotify_login_needs_a_client_id_and_endpoint_url_needs_thing(capsys, mock, tmp_path):
    code, _, err = login(capsys, mock, tmp_path)
    assert code == 2 and "--client-id is needed" in err
    code, _, err = login(capsys, mock, tmp_path, "--client-id", CLIENT_ID,
                         "--endpoint-url", "http://127.0.0.1:1")
    assert code == 2 and "goes with --thing" in err
    code, _, err = login(capsys, mock, tmp_path, "--client-id", CLIENT_ID, "--replace")
    assert code == 2 and "--replace is for the token push: it goes with --thing" in err


@needs_mosquitto
def test_spotify_login_pushes_the_token_to_the_device(capsys, mock, tmp_path, monkeypatch):
    monkeypatch.setattr(webbrowser, "open", Browser(mock))
    with IotLocal() as iot:
        device = TokenListener(iot, THING, tmp_path / "thing", confirm=True)
        try:
            code, out, err = login(capsys, mock, tmp_path, "--client-id", CLIENT_ID,
                                   "--thing", THING, "--endpoint-url", iot.endpoint_url)
        finally:
            device.close()
    assert code == 0, err
    (message,) = device.messages
    saved = json.loads((tmp_path / "spotty" / "token.json").read_text())
    assert json.loads(message.payload) == {"refresh_token": saved["refresh_token"],
                                           "issued_at": saved["issued_at"]}
    assert "bathroom-1 has stored the new token" in out
    assert_not_shown(secrets_of(mock), out, err)


@needs_mosquitto
def test_spotify_login_says_when_the_device_is_offline(capsys, mock, tmp_path, monkeypatch):
    monkeypatch.setattr(webbrowser, "open", Browser(mock))
    with IotLocal() as iot:
        monkeypatch.setenv("SPOTTY_ENDPOINT_URL", iot.endpoint_url)  # as --endpoint-url
        code, out, err = login(capsys, mock, tmp_path, "--client-id", CLIENT_ID,
                               "--thing", THING, "--wait-timeout", "0.5")
    assert code == 4
    assert "bathroom-1 has not confirmed the new token" in err and "offline" in err
    assert (tmp_path / "spotty" / "token.json").exists()  # the login is kept
    assert_not_shown(secrets_of(mock), out, err)


# -- ota ------------------------------------------------------------------------------


@pytest.fixture
def firmware(tmp_path):
    root = tmp_path / "device"
    for rel, text in {"main.py": "import app\n", "app.py": "X = 1\n",
                      "board/sim.py": "SIM = 1\n"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_ota_keygen_build_and_show(capsys, firmware, tmp_path):
    keys = tmp_path / "keys"
    code, out, _ = run(capsys, "ota", "keygen", str(keys))
    assert code == 0 and "ota_key.pem (0600" in out and "--ota-pubkey" in out
    assert stat.S_IMODE((keys / "ota_key.pem").stat().st_mode) == 0o600
    key_text = (keys / "ota_key.pem").read_text()

    bundle = tmp_path / "fw-1.2.0.spota"
    code, out, _ = run(capsys, "ota", "build", "--version", "1.2.0", "--key",
                       str(keys / "ota_key.pem"), "--out", str(bundle), "--source", str(firmware))
    assert code == 0 and re.match(r"%s: version 1\.2\.0, counter \d{10}, 2 files" % re.escape(
        str(bundle)), out)

    code, out, _ = run(capsys, "ota", "show", str(bundle), "--pub", str(keys / "ota_pub.bin"))
    assert code == 0
    counter = ota.read_manifest(bundle)["counter"]
    assert out.splitlines()[0] == "version 1.2.0 (format 1), counter %d, 2 files:" % counter
    assert out.splitlines()[1].endswith("  app.mpy") and out.splitlines()[2].endswith("  main.py")
    assert out.splitlines()[-1].startswith("signature and contents: valid")
    code, out, _ = run(capsys, "ota", "show", str(bundle))
    assert code == 0 and "not checked" in out
    assert_not_shown([line for line in key_text.splitlines()[1:-1]], out)


def test_ota_errors_are_clear(capsys, firmware, tmp_path):
    ota.keygen(tmp_path / "a")
    ota.keygen(tmp_path / "b")
    code, _, err = run(capsys, "ota", "keygen", str(tmp_path / "a"))
    assert code == 3 and "refusing to replace an OTA signing key" in err
    bundle = tmp_path / "fw.spota"
    run(capsys, "ota", "build", "--version", "1", "--key", str(tmp_path / "a" / "ota_key.pem"),
        "--out", str(bundle), "--source", str(firmware))
    code, _, err = run(capsys, "ota", "show", str(bundle), "--pub",
                       str(tmp_path / "b" / "ota_pub.bin"))
    assert code == 1 and "signature does not match" in err
    code, _, err = run(capsys, "ota", "show", str(tmp_path / "none.spota"))
    assert code == 1 and err.startswith("spotty: cannot read the OTA bundle")
    code, _, err = run(capsys, "ota", "build", "--version", "1 beta", "--key",
                       str(tmp_path / "a" / "ota_key.pem"), "--out", str(bundle),
                       "--source", str(firmware))
    assert code == 3 and "bad version" in err


# -- errors: one line and an exit code a script can use, never a traceback -------------


@pytest.fixture
def busy_port():
    """A port something else listens on, as another broker or server would."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize("option, other", [("--http-port", "--mqtt-port"),
                                           ("--mqtt-port", "--http-port")])
def test_iot_local_on_a_busy_port_says_which(capsys, busy_port, tmp_path, option, other):
    code, _, err = run(capsys, "iot-local", "--state-dir", str(tmp_path), option, str(busy_port),
                       other, "0")
    assert code == 1
    assert err == "spotty: cannot listen on 127.0.0.1:%d: address in use (%s)\n" % (
        busy_port, option)


def test_ota_serve_on_a_busy_port_says_so(capsys, busy_port, tmp_path):
    code, _, err = run(capsys, "ota", "serve", str(tmp_path), "--host", "127.0.0.1",
                       "--port", str(busy_port), "--ca-dir", str(tmp_path / "ca"))
    assert code == 1
    assert err == "spotty: cannot listen on 127.0.0.1:%d: address in use (--port)\n" % busy_port


def test_a_closed_pipe_ends_quietly_with_sigpipes_status(firmware, tmp_path):
    """`spotty ota show ... | head`: the reader is gone before spotty writes."""
    keys = tmp_path / "keys"
    ota.keygen(keys)
    bundle = tmp_path / "fw.spota"
    ota.build(firmware, "1.0.0", keys / "ota_key.pem", bundle)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([sys.executable, "-m", "host_tools.cli", "ota", "show",
                                 str(bundle)], cwd=REPO, stdout=write_end,
                                stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (141, "")


def test_deploy_to_a_port_that_is_not_there_says_so(capsys, tmp_path):
    code, _, err = run(capsys, "deploy", "--port", str(tmp_path / "ttyNOPE"))
    assert code == 1 and "ttyNOPE does not exist: is the board plugged in?" in err
    assert "another program" not in err


def test_provision_to_a_port_that_is_not_there_says_so(
        capsys, aws, saved_login, tmp_path, monkeypatch):
    monkeypatch.setenv("SPOTTY_WIFI_PASSWORD", SECRETS["SPOTTY_WIFI_PASSWORD"])
    code, _, err = run(capsys, "provision", THING, "--port", str(tmp_path / "ttyNOPE"),
                       "--wifi-ssid", "Home", "--spotify-client-id", CLIENT_ID,
                       "--region", "eu-west-1", "--token-file", str(saved_login))
    assert code == 1 and "ttyNOPE does not exist: is the board plugged in?" in err


def test_ota_build_with_the_public_key_says_which_key_it_wants(capsys, firmware, tmp_path):
    ota.keygen(tmp_path / "keys")
    code, _, err = run(capsys, "ota", "build", "--version", "1", "--key",
                       str(tmp_path / "keys" / "ota_pub.bin"), "--out", str(tmp_path / "b.spota"),
                       "--source", str(firmware))
    assert code == 3
    assert "ota_pub.bin is the OTA public key" in err and "ota_key.pem" in err
    assert len(err.splitlines()) == 1 and "PEM file" not in err


@pytest.fixture
def no_aws_credentials(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


NO_CREDENTIALS = "spotty: no AWS credentials: run `aws configure` (or set AWS_PROFILE)\n"


@pytest.mark.parametrize("argv", [["config", "get"], ["stats"], ["ota", "status"]])
def test_missing_aws_credentials_are_said_once_for_every_aws_command(
        capsys, no_aws_credentials, argv):
    code, _, err = run(capsys, *argv, "--thing", THING, "--region", "eu-west-1")
    assert (code, err) == (1, NO_CREDENTIALS)


def test_provision_without_aws_credentials_says_so(
        capsys, no_aws_credentials, boards, saved_login, tmp_path, monkeypatch):
    monkeypatch.setenv("SPOTTY_WIFI_PASSWORD", SECRETS["SPOTTY_WIFI_PASSWORD"])
    code, _, err = provision(capsys, tmp_path, "--token-file", str(saved_login))
    assert (code, err) == (1, NO_CREDENTIALS)


@pytest.mark.parametrize("thing, password, refused", [
    ("bath room", "correct horse battery", "thing name 'bath room'"),
    (THING, "short", "the Wi-Fi password must be 8 to 63"),
])
def test_provision_checks_its_arguments_before_the_prompt_or_the_port(
        capsys, boards, saved_login, tmp_path, monkeypatch, thing, password, refused):
    monkeypatch.delenv("SPOTTY_WIFI_PASSWORD", raising=False)
    prompts = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or password)
    code, _, err = run(capsys, "provision", thing, "--port", "/dev/ttyUSB0", "--wifi-ssid",
                       "Home", "--spotify-client-id", CLIENT_ID, "--token-file",
                       str(saved_login))
    assert code == 3 and refused in err
    assert boards.opened == []
    assert len(prompts) == (0 if thing != THING else 1)


def test_the_readme_lists_every_exit_code():
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("### Exit codes"):]
    codes = [value for name, value in vars(errors).items() if name.startswith("EXIT_")]
    for code in [0, *codes]:
        assert "\n| %d |" % code in table, code


# -- make flash / make deploy ---------------------------------------------------------


def make(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-n", "--no-print-directory", *args], cwd=REPO,
                          capture_output=True, text=True)


def test_make_flash_says_what_is_missing():
    result = make("flash", "PORT=/dev/ttyUSB0")
    assert result.returncode != 0
    assert "FIRMWARE is not set: make flash FIRMWARE=" in result.stderr


def test_make_flash_and_deploy_run_spotty():
    result = make("flash", "PORT=/dev/ttyUSB0", "FIRMWARE=fw.bin")
    assert result.returncode == 0
    assert 'spotty flash --port "/dev/ttyUSB0" --firmware "fw.bin"\n' in result.stdout
    result = make("flash", "FIRMWARE=fw.bin", "CHIP=esp32s3")  # the one board connected
    assert 'spotty flash --firmware "fw.bin" --chip "esp32s3"\n' in result.stdout
    assert 'spotty deploy --port "/dev/ttyUSB0"' in make("deploy", "PORT=/dev/ttyUSB0").stdout
    assert make("deploy").stdout.endswith("spotty deploy\n")
    assert make("hw-report").stdout.endswith("spotty hw-report\n")
    assert 'spotty hw-report --port "/dev/ttyUSB0" --session-s "30"' in make(
        "hw-report", "PORT=/dev/ttyUSB0", "SESSION_S=30").stdout


# -- config: typos do not pass silently -------------------------------------------------


MOTO_DATA = "https://data-ats.iot.eu-west-1.amazonaws.com"  # where moto's data plane answers


def test_config_set_warns_when_aws_has_no_such_thing(capsys, aws):
    aws.create_thing(thingName="bathroom")
    _, _, err = run(capsys, "config", "set", "--thing", "bathrom", "--region", "eu-west-1",
                    "--endpoint-url", MOTO_DATA, "volume=30")
    # AWS then creates the shadow; moto refuses a shadow without a thing, on the next line.
    assert err.splitlines()[0] == (
        "spotty: warning: there is no thing named bathrom in AWS IoT (did you mean bathroom?); "
        "the change is stored in its shadow all the same")


def test_config_set_warns_when_a_registered_thing_never_reported(capsys, aws):
    aws.create_thing(thingName="bathroom")
    code, out, err = run(capsys, "config", "set", "--thing", "bathroom", "--region", "eu-west-1",
                         "--endpoint-url", MOTO_DATA, "volume=30")
    assert code == 0 and "desired config of bathroom updated" in out
    assert err.startswith("spotty: warning: bathroom has never reported to its shadow")


# -- sim and demo -------------------------------------------------------------------------


def scenario_file(tmp_path, config=None, events=None):
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps({"config": {"spotify_device": "Bathroom"} if config is None
                                else config, "events": events or [], "until": 5}))
    return str(path)


def test_sim_refuses_an_unknown_event_key(capsys, tmp_path):
    code, out, err = run(capsys, "sim", scenario_file(tmp_path, events=[{"at": 1, "pri": 1}]))
    assert code == 3 and out == ""
    assert err == ('spotty: event {"at": 1, "pri": 1}: unknown key pri, did you mean pir? (an '
                   'event has `at` and one of `pir`, `desired`, `advance_s`, `rtc_offset_s`, '
                   '`wifi`)\n')


def test_sim_refuses_clock_and_wifi_events_and_ticks_it_cannot_run(capsys, tmp_path):
    refusals = [
        ({"at": 1, "pir": 1, "advance_s": 60},
         'event {"at": 1, "pir": 1, "advance_s": 60}: an event has `at` and one of `pir`, '
         '`desired`, `advance_s`, `rtc_offset_s`, `wifi`'),
        ({"at": 1, "advance_s": 0},
         'event {"at": 1, "advance_s": 0}: `advance_s` must be a whole number of seconds '
         'above 0'),
        ({"at": 1, "rtc_offset_s": 1.5},
         'event {"at": 1, "rtc_offset_s": 1.5}: `rtc_offset_s` must be a whole number of '
         'seconds'),
        ({"at": -1, "advance_s": 60},
         'event {"at": -1, "advance_s": 60}: `advance_s` needs an `at` of 0 or more (the '
         "board's clocks run from its ready)"),
        ({"at": 1, "wifi": 2}, 'event {"at": 1, "wifi": 2}: `wifi` must be 0 (cut) or 1 '
         '(back), at 0 or later'),
        ({"at": 1, "wifi": True}, 'event {"at": 1, "wifi": true}: `wifi` must be 0 (cut) or '
         '1 (back), at 0 or later'),
        ({"at": -1, "wifi": 0}, 'event {"at": -1, "wifi": 0}: `wifi` must be 0 (cut) or 1 '
         '(back), at 0 or later'),
    ]
    for event, message in refusals:
        code, out, err = run(capsys, "sim", scenario_file(tmp_path, events=[event]))
        assert (code, out, err) == (3, "", "spotty: %s\n" % message)
    path = tmp_path / "ticks.json"
    for ticks in (-1, 1 << 30, "0", True):
        path.write_text(json.dumps({"config": {"spotify_device": "Bathroom"}, "until": 5,
                                    "ticks_ms": ticks}))
        code, out, err = run(capsys, "sim", str(path))
        assert (code, out) == (3, "") and err == (
            "spotty: scenario `ticks_ms` must be a whole number from 0 to 1073741823 (the "
            "board's tick counter when it starts)\n"), ticks


def test_sim_against_a_real_spotify_refuses_a_client_secret(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", CLIENT_SECRET)
    (tmp_path / "ca.der").write_bytes(b"unused")
    code, out, err = run(capsys, "sim", scenario_file(tmp_path), "--spotify-url",
                         "https://127.0.0.1:9", "--spotify-ca", str(tmp_path / "ca.der"))
    assert (code, out) == (2, "") and "SPOTIFY_CLIENT_SECRET is set" in err
    assert CLIENT_SECRET not in err


def test_sim_without_a_speaker_names_the_mocks_speakers(capsys, tmp_path):
    speakers = "Bathroom, Kitchen, Living Room TV, Alice's iPhone, Web Player (Chrome)"
    code, out, err = run(capsys, "sim", scenario_file(tmp_path, config={"timeout_s": 5}))
    assert code == 3 and out == ""
    assert err == ('spotty: the scenario names no speaker, and the mock Spotify has none '
                   'playing: add "spotify_device" to its "config", one of: %s\n' % speakers)
    code, _, err = run(capsys, "sim", scenario_file(tmp_path, config={"spotify_device": "Bathrom"}))
    assert code == 3
    assert err == ("spotty: spotify_device 'Bathrom' is not a speaker the mock Spotify knows: "
                   "one of: %s\n" % speakers)


def test_sim_refuses_scenario_settings_as_config_set_does(capsys, tmp_path):
    code, _, err = run(capsys, "sim", scenario_file(tmp_path, config={"tz": "Europe/Berln"}))
    assert code == 3
    assert err == ("spotty: scenario config refused: tz: unknown time zone 'Europe/Berln' "
                   "(did you mean Europe/Berlin?)\n")
