"""The `spotty` command: a table of subcommands over importable functions."""

import argparse
import os
import sys

import shtab

from .aws.commands import (
    WIFI_PASSWORD_ENV,
    cmd_config,
    cmd_iot_local,
    cmd_provision,
    cmd_stats,
)
from .board.commands import cmd_deploy, cmd_flash, cmd_hw_report
from .common.argparsing import (
    ENDPOINT_ENV,
    PORT_ENV,
    THING_ENV,
    HelpFormatter,
    apply_environment,
    command,
    from_environment,
    non_negative_int,
    version_text,
)
from .common.errors import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, SpottyError
from .dashboard.commands import DEFAULT_PORT as DASHBOARD_PORT
from .dashboard.commands import cmd_dashboard
from .ota.commands import (
    cmd_ota_build,
    cmd_ota_keygen,
    cmd_ota_push,
    cmd_ota_serve,
    cmd_ota_show,
    cmd_ota_status,
)
from .sim.commands import cmd_demo, cmd_sim, heapsize_arg
from .spotify import login as spotify_login
from .spotify.commands import cmd_mock_spotify, cmd_spotify_login

DESCRIPTION = """\
SpottyPottySense starts your Spotify music when someone walks into the room and
pauses it after they leave: an ESP32 with a motion sensor does it all on its own.
spotty puts the firmware on the board, sets it up and looks after it.

  spotty demo                                       see it work, no hardware needed
  spotty flash --firmware ESP32_GENERIC-20241129-v1.24.1.bin
  spotty spotify-login --client-id ID               log in to Spotify, once
  spotty provision bathroom --wifi-ssid MyWifi --spotify-client-id ID
  spotty config set --thing bathroom spotify_device=Bathroom tz=Europe/Berlin
  spotty stats --thing bathroom --plot use.png

`spotty COMMAND --help` shows a command's options, their defaults and an example."""

EPILOG = """\
environment:
  %-20s --thing of the commands that talk to a device
  %-20s --port of the board (else the one serial board connected)
  %-20s --endpoint-url, e.g. a running `spotty iot-local`'s

exit codes: 0 done, 1 failed, 2 usage, 3 refused, 4 the device did not confirm in time
(probably offline), 130 interrupted, 141 the reader of the output went away""" % (
    THING_ENV, PORT_ENV, ENDPOINT_ENV)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spotty", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands")
    _simulator_commands(sub)
    _board_commands(sub)
    _login_commands(sub)
    _provision_command(sub)
    _shadow_commands(sub)
    _dashboard_command(sub)
    _ota_commands(command(sub, "ota", "signed over-the-air updates",
                          "spotty ota build --version 0.2.0 --key ota_key.pem --out fw.spota"))
    _report_command(sub)
    _stand_in_commands(sub)
    p = command(sub, "completion", "print the shell completion script for bash or zsh",
                'eval "$(spotty completion bash)"   # in ~/.bashrc')
    p.add_argument("shell", choices=("bash", "zsh"), help="your shell")
    p.set_defaults(func=cmd_completion)
    return parser


def _simulator_commands(sub) -> None:
    p = command(sub, "demo", "a short demo: the real firmware on a simulated board", "spotty demo")
    p.set_defaults(func=cmd_demo)

    p = command(sub, "sim", "run the firmware on the simulated board through a scenario",
                "spotty sim host_tools/sim/scenarios/demo.json")
    _file(p.add_argument("scenario", help="scenario JSON file (see README, The simulator)"))
    p.add_argument("--json", action="store_true", help="one JSON line per firmware event")
    p.add_argument("--spotify-url", help="a Spotify-compatible server (default: a local mock)")
    _file(p.add_argument("--spotify-ca",
                         help="CA certificate (PEM or DER) to trust for that server"))
    p.add_argument("--client-id", default="spotty-test-client", help="Spotify client id")
    p.add_argument("--iot", action="store_true",
                   help="with the shadow link, against a local AWS IoT stand-in (needs mosquitto)")
    p.add_argument("--thing", default="sim-bathroom", help="thing name with --iot")
    p.add_argument("--endpoint-url", metavar="URL", help="with the shadow link of a running "
                   "`spotty iot-local` (its HTTP endpoint; implies --iot), so the shadow stays "
                   "for `config`, `stats` and `dashboard`")
    p.add_argument("--state-dir", metavar="DIR", help="that iot-local's --state-dir (default "
                   ".sim/iot-local; implies --iot)")
    p.add_argument("--flash", metavar="DIR", help="keep the simulated board's flash here, so "
                   "its statistics and settings carry over to the next run, as on a board")
    p.add_argument("--install", action="store_true",
                   help="compile the firmware into the simulated flash and run it from there, "
                   "as on a board (.mpy; OTA swaps real files)")
    p.add_argument("--esp32-tls", action="store_true",
                   help="model an ESP32's TLS handshakes: each new connection to the mock "
                   "Spotify takes 1000 ms longer, and to the AWS IoT stand-in (mutual TLS) 2500 ms")
    p.add_argument("--heapsize", type=heapsize_arg, metavar="SIZE",
                   help="run under this GC heap, e.g. 88K, and say whether the firmware ran out "
                   "of memory (use a 32-bit interpreter via SPOTTY_MICROPYTHON for ESP32 figures)")
    p.set_defaults(func=cmd_sim)


def _board_commands(sub) -> None:
    from .board.flash import DEFAULT_BAUD, IMAGE_OFFSETS

    p = command(sub, "flash", "erase the board, write MicroPython, deploy the firmware",
                "spotty flash --firmware ESP32_GENERIC-20241129-v1.24.1.bin")
    _serial_port(p)
    _file(p.add_argument("--firmware", required=True, metavar="BIN",
                         help="MicroPython image from micropython.org/download (the .bin)"))
    p.add_argument("--chip", default="esp32", choices=sorted(IMAGE_OFFSETS),
                   help="the board's chip")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD, help="esptool's baud rate")
    p.add_argument("--no-deploy", action="store_true", help="only MicroPython, no firmware")
    p.set_defaults(func=cmd_flash)

    p = command(sub, "deploy", "copy the compiled firmware onto the board (what changed)",
                "spotty deploy --port /dev/ttyUSB0")
    _serial_port(p)
    p.add_argument("--no-reset", action="store_true", help="do not restart the firmware after")
    p.set_defaults(func=cmd_deploy)


def _report_command(sub) -> None:
    from .board.report import DEFAULT_JSON, SESSION_S

    p = command(sub, "hw-report", "heap after boot, session high-water, mem_info and TLS "
                "handshake times, measured on the board", "spotty hw-report --session-s 60")
    _serial_port(p)
    p.add_argument("--session-s", type=float, default=SESSION_S, metavar="S",
                   help="how long the firmware runs for the high-water mark")
    p.add_argument("--json", default=str(DEFAULT_JSON), metavar="PATH",
                   help="also write the figures here")
    p.set_defaults(func=cmd_hw_report)


def _provision_command(sub) -> None:
    p = command(sub, "provision", "create the AWS IoT thing, its certificate and policy, and "
                "put every credential the device needs onto the board",
                "spotty provision bathroom --wifi-ssid MyWifi --spotify-client-id ID",
                description="Create or reuse the AWS IoT thing, its certificate and policy, "
                "and write Wi-Fi,\nSpotify and AWS credentials onto the board. The Wi-Fi "
                "password is typed (or read\nfrom $%s); nothing secret is printed. Running "
                "it again is safe." % WIFI_PASSWORD_ENV)
    p.add_argument("thing", nargs="?", help="AWS IoT thing name: letters, digits, '-', '_' "
                   "(or set %s)" % THING_ENV)
    _serial_port(p)
    p.add_argument("--wifi-ssid", required=True, help="the Wi-Fi network's name")
    p.add_argument("--spotify-client-id", required=True, metavar="ID",
                   help="your Spotify app's client id (developer.spotify.com)")
    p.add_argument("--region", help="AWS region (default: your AWS configuration's)")
    _file(p.add_argument("--config", metavar="FILE.json",
                         help="initial settings, a JSON object (see README, Configuration)"))
    p.add_argument("--pir-pin", type=int, metavar="N", help="the PIR sensor's GPIO (firmware "
                   "default 14)")
    p.add_argument("--led-pin", type=int, metavar="N", help="the status LED's GPIO (firmware "
                   "default 2)")
    p.add_argument("--glitch-ms", type=int, metavar="N", help="ignore PIR pulses shorter than N "
                   "ms (firmware default 200)")
    _file(p.add_argument("--ota-pubkey", metavar="FILE",
                         help="ota_pub.bin from `spotty ota keygen`"))
    _file(p.add_argument("--ota-ca", metavar="FILE", action="append",
                         help="a CA root (PEM or DER) trusted for update downloads only; "
                         "repeat for more (default: none, Spotify's roots serve)"))
    p.add_argument("--new-certificate", action="store_true",
                   help="create a new device certificate even if one is kept")
    p.add_argument("--certs-dir", metavar="DIR", help="host copies of device keys (default: "
                   "certs/devices in this checkout)").complete = shtab.DIRECTORY
    _file(p.add_argument("--token-file", metavar="F", help="the saved Spotify login (default "
                         "~/.config/spotty/spotify-token.json)"))
    from_environment(p, required=("thing",), thing=THING_ENV, port=PORT_ENV)
    p.set_defaults(func=cmd_provision)


def _login_commands(sub) -> None:
    p = command(sub, "spotify-login", "log in to Spotify in the browser and save the token "
                "(with --thing, also send it to the device)",
                "spotty spotify-login --client-id 0123456789abcdef0123456789abcdef")
    p.add_argument("--client-id", metavar="ID", help="your app's client id (default: the saved "
                   "login's)")
    p.add_argument("--port", type=int, default=spotify_login.DEFAULT_PORT,
                   help="for the redirect URI http://127.0.0.1:PORT/callback")
    p.add_argument("--accounts-url", default=spotify_login.DEFAULT_ACCOUNTS_URL,
                   help="Spotify's accounts service, or a stand-in")
    _file(p.add_argument("--accounts-ca", metavar="FILE", help="CA (PEM or DER) to trust for "
                         "--accounts-url, e.g. `spotty mock-spotify`'s"))
    _file(p.add_argument("--token-file", metavar="F", help="where the login is saved "
                         "(default ~/.config/spotty/spotify-token.json)"))
    p.add_argument("--thing", help="send the new token to this device over AWS IoT")
    p.add_argument("--endpoint-url", help="with --thing: data-plane API (default: $%s, else "
                   "your AWS account's)" % ENDPOINT_ENV)
    p.add_argument("--region", help="with --thing: AWS region")
    p.add_argument("--wait-timeout", type=float, default=60, metavar="S",
                   help="with --thing: seconds to wait for the device")
    p.add_argument("--replace", action="store_true", help="with --thing: replace the "
                   "device's token even if it claims to be newer (e.g. one dated in the "
                   "future, which refuses every genuine push)")
    p.set_defaults(func=cmd_spotify_login)


def _shadow_commands(sub) -> None:
    group = command(sub, "config", "the device's settings, through its shadow",
                    *(example for _, _, example in CONFIG_ACTIONS))
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION",
                                   title="actions")
    for name, text, example in CONFIG_ACTIONS:
        q = command(actions, name, text, example)
        _shadow_arguments(q)
    q = actions.choices["set"]
    q.add_argument("values", nargs="+", metavar="KEY=VALUE",
                   help="settings (see README, Configuration); tz may be a zone name such as "
                   "Europe/Berlin")
    actions.choices["unset"].add_argument("values", nargs="+", metavar="KEY",
                                          help="settings to put back to their defaults")
    actions.choices["get"].add_argument("--json", action="store_true",
                                        help="the raw shadow document")
    for name in ("set", "unset"):
        q = actions.choices[name]
        q.add_argument("--wait", action="store_true", help="wait until the device reports it")
        q.add_argument("--timeout", type=float, default=60, help="seconds --wait waits")
    q = actions.choices["watch"]
    q.add_argument("--interval", type=float, default=2.0, help="seconds between looks")
    q.add_argument("--count", type=int, help="stop after this many changes")
    group.set_defaults(func=cmd_config)

    p = command(sub, "stats", "how the device has been used (its reported stats), as a table "
                "and a plot", "spotty stats --thing bathroom --plot use.png")
    _shadow_arguments(p)
    p.add_argument("--plot", metavar="FILE.png", help="draw sessions by hour and by day")
    p.set_defaults(func=cmd_stats)


def _dashboard_command(sub) -> None:
    p = command(sub, "dashboard", "a web page with every device: status, settings, use",
                "spotty dashboard --endpoint-url http://127.0.0.1:8080")
    p.add_argument("--endpoint-url", help="data-plane API, e.g. the local stand-in's "
                   "http://127.0.0.1:8080 (default: $%s, else your AWS account's)"
                   % ENDPOINT_ENV)
    p.add_argument("--region", help="AWS region (default: your AWS configuration's)")
    from_environment(p, endpoint_url=ENDPOINT_ENV)
    p.add_argument("--thing", action="append", metavar="NAME", help="show only this thing "
                   "(repeat for more; default: every thing in the registry)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on: 127.0.0.1 is "
                   "this computer only; 0.0.0.0 shares it on your network")
    p.add_argument("--port", type=int, default=DASHBOARD_PORT, help="port to listen on")
    p.add_argument("--refresh", type=float, default=5.0, metavar="S",
                   help="seconds between the page's updates")
    p.set_defaults(func=cmd_dashboard)


CONFIG_ACTIONS = (
    ("get", "desired, reported and pending settings, side by side",
     "spotty config get --thing bathroom"),
    ("set", "change settings (checked before sending)",
     "spotty config set --thing bathroom tz=Europe/Berlin quiet_start=22:00 quiet_end=7:00"),
    ("unset", "put settings back to their defaults", "spotty config unset --thing bathroom volume"),
    ("watch", "print the settings at every change", "spotty config watch --thing bathroom"),
)


def _ota_commands(p) -> None:
    sub = p.add_subparsers(dest="ota_command", required=True, metavar="ACTION", title="actions")
    q = command(sub, "keygen", "create the signing key pair", "spotty ota keygen")
    q.add_argument("dir", nargs="?", help="where: a private folder, not one of bundles "
                   "(default: ~/.config/spotty/ota)").complete = shtab.DIRECTORY
    q.set_defaults(func=cmd_ota_keygen)

    q = command(sub, "build", "compile the firmware and sign it into a bundle",
                "spotty ota build --version 0.2.0 --key ~/.config/spotty/ota_key.pem "
                "--out fw-0.2.0.spota")
    q.add_argument("--version", required=True, metavar="V", help="the new firmware version")
    _file(q.add_argument("--key", required=True, metavar="ota_key.pem",
                         help="the private signing key from `spotty ota keygen`"))
    q.add_argument("--out", required=True, metavar="BUNDLE.spota", help="the bundle to write")
    q.add_argument("--source", metavar="DIR", help="firmware tree (default: device/ in this "
                   "checkout)").complete = shtab.DIRECTORY
    q.add_argument("--ca", metavar="DIR", help="also replace the device's trust lists with "
                   "DIR/spotify/*.der, DIR/iot/*.der and DIR/ota/*.der (e.g. certs/)"
                   ).complete = shtab.DIRECTORY
    q.add_argument("--counter", type=int, metavar="N", help="the anti-downgrade counter: "
                   "a device takes only a bundle whose counter is above the one it runs "
                   "(default: the Unix time now)")
    q.set_defaults(func=cmd_ota_build)

    q = command(sub, "show", "a bundle's manifest; with --pub, verify it as a device does",
                "spotty ota show fw-0.2.0.spota --pub ~/.config/spotty/ota_pub.bin")
    _file(q.add_argument("bundle", help="the bundle file"))
    _file(q.add_argument("--pub", metavar="ota_pub.bin", help="the public key to verify with"))
    q.set_defaults(func=cmd_ota_show)

    q = command(sub, "push", "ask a device to update (sets desired.ota in its shadow)",
                "spotty ota push --thing bathroom --url https://example.com/fw-0.2.0.spota "
                "--bundle fw-0.2.0.spota")
    _shadow_arguments(q)
    q.add_argument("--url", required=True, help="https URL the device downloads the bundle from")
    _file(q.add_argument("--bundle", required=True,
                         help="the same bundle, for its size and sha256"))
    _file(q.add_argument("--pub", metavar="ota_pub.bin", help="check the signature before "
                         "pushing"))
    q.set_defaults(func=cmd_ota_push)

    q = command(sub, "status", "what a device runs and how its last update went",
                "spotty ota status --thing bathroom")
    _shadow_arguments(q)
    q.set_defaults(func=cmd_ota_status)

    q = command(sub, "serve", "serve bundles over HTTPS (a local test server)",
                "spotty ota serve bundles/ --port 8443")
    q.add_argument("dir", help="folder with the bundles (only bundles are served; a folder "
                   "with a private key in it is refused)").complete = shtab.DIRECTORY
    q.add_argument("--host", default="127.0.0.1", help="address to listen on: 127.0.0.1 is "
                   "this machine only; e.g. 0.0.0.0 for boards on your network")
    q.add_argument("--port", type=int, default=8443, help="port to listen on")
    q.add_argument("--ca-dir", default=".sim/ota-server",
                   help="its CA is kept here; put ca.der in the board's OTA trust list "
                   "(spotty provision --ota-ca DIR/ca.der)")
    q.set_defaults(func=cmd_ota_serve)


def _stand_in_commands(sub) -> None:
    p = command(sub, "mock-spotify", "serve the mock Spotify Web API over HTTPS",
                "spotty mock-spotify --port 8443")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8443, help="port to listen on")
    p.add_argument("--state-dir", default=".sim/mock-spotify", help="where its CA is written")
    _tls_delay(p, "1000 for an ESP32")
    p.set_defaults(func=cmd_mock_spotify)

    p = command(sub, "iot-local", "a local AWS IoT stand-in: mosquitto and the shadow service",
                "spotty iot-local --state-dir .sim/iot-local")
    p.add_argument("--state-dir", default=".sim/iot-local", help="keys and shadows live here")
    p.add_argument("--mqtt-port", type=int, default=8883, help="the broker's port (TLS)")
    p.add_argument("--http-port", type=int, default=8080, help="the data-plane shadow API")
    _tls_delay(p, "2500 for an ESP32's mutual TLS")
    p.set_defaults(func=cmd_iot_local)


def _tls_delay(p, example: str) -> None:
    p.add_argument("--tls-delay-ms", type=non_negative_int, default=0, metavar="MS",
                   help="make each new TLS handshake take this much longer, as a board's CPU "
                   "does (%s; default 0)" % example)


def _shadow_arguments(p) -> None:
    p.add_argument("--thing", help="the device's AWS IoT thing name (or set %s)" % THING_ENV)
    p.add_argument("--endpoint-url", help="data-plane API, e.g. `spotty iot-local`'s (default: "
                   "$%s, else your AWS account's)" % ENDPOINT_ENV)
    p.add_argument("--region", help="AWS region (default: your AWS configuration's)")
    from_environment(p, required=("thing",), thing=THING_ENV, endpoint_url=ENDPOINT_ENV)


def _serial_port(p) -> None:
    p.add_argument("--port", help="serial port, e.g. /dev/ttyUSB0 or COM5 (default: $%s, else "
                   "the one serial board connected)" % PORT_ENV)
    from_environment(p, port=PORT_ENV)


def _file(action):
    action.complete = shtab.FILE
    return action


def cmd_completion(args) -> int:
    print(shtab.complete(build_parser(), shell=args.shell))
    return 0


def main(argv=None) -> int:
    """Run a subcommand; its exit code, or one of errors.py's (listed in the README)."""
    args = build_parser().parse_args(argv)
    apply_environment(args)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as git does, with SIGPIPE's 128 + 13.
        # stdout goes to devnull so the interpreter's own flush at exit cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as e:
        error = _user_error(e)
        if error is None:
            raise
        print("spotty: %s" % error, file=sys.stderr)
        return error.exit_code


def _user_error(e: Exception) -> SpottyError | None:
    """The message for a failure the user can act on; None for a bug (keep its traceback).
    Missing AWS credentials are said here once for every AWS command, whether botocore's
    error arrives bare or wrapped by the command."""
    botocore = sys.modules.get("botocore.exceptions")  # not loaded: not an AWS command
    if botocore and isinstance(e.__cause__ if isinstance(e, SpottyError) else e,
                               botocore.NoCredentialsError):
        return SpottyError("no AWS credentials: run `aws configure` (or set AWS_PROFILE)")
    return e if isinstance(e, SpottyError) else None


if __name__ == "__main__":
    sys.exit(main())
