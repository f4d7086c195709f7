"""The `spotty` command: a table of subcommands over importable functions."""

import argparse
import os
import sys

from .aws.commands import (
    WIFI_PASSWORD_ENV,
    cmd_config,
    cmd_iot_local,
    cmd_provision,
    cmd_stats,
)
from .board.commands import cmd_deploy, cmd_flash, cmd_hw_report
from .common.devicepath import DEVICE_DIR
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spotty", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _board_commands(sub)
    _login_commands(sub)
    _ota_commands(sub.add_parser("ota", help="signed over-the-air updates"))

    p = sub.add_parser("sim", help="run the firmware on the simulated board")
    p.add_argument("scenario", help="scenario JSON file")
    p.add_argument("--json", action="store_true", help="one JSON line per firmware event")
    p.add_argument("--spotify-url", help="a Spotify-compatible server (default: a local mock)")
    p.add_argument("--spotify-ca", help="CA certificate (PEM or DER) to trust for that server")
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
    p.add_argument("--heapsize", type=heapsize_arg, metavar="SIZE",
                   help="run under this GC heap, e.g. 88K, and say whether the firmware ran out "
                   "of memory (use a 32-bit interpreter via SPOTTY_MICROPYTHON for ESP32 figures)")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("demo", help="a short demo on the simulator")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("mock-spotify", help="serve the mock Spotify Web API over HTTPS")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8443)
    p.add_argument("--state-dir", default=".sim/mock-spotify", help="where its CA is written")
    p.set_defaults(func=cmd_mock_spotify)

    p = sub.add_parser("iot-local", help="a local AWS IoT stand-in: mosquitto + shadow service")
    p.add_argument("--state-dir", default=".sim/iot-local", help="keys and shadows live here")
    p.add_argument("--mqtt-port", type=int, default=8883)
    p.add_argument("--http-port", type=int, default=8080, help="the data-plane shadow API")
    p.set_defaults(func=cmd_iot_local)

    p = sub.add_parser("config", help="the device's settings, through its shadow")
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("get", help="desired | reported | pending, side by side")
    q.add_argument("--json", action="store_true", help="the raw shadow document")
    q = actions.add_parser("set", help="KEY=VALUE ... (checked before sending)")
    q.add_argument("values", nargs="+", metavar="KEY=VALUE")
    q = actions.add_parser("unset", help="KEY ...: back to the defaults")
    q.add_argument("values", nargs="+", metavar="KEY")
    for q in actions.choices.values():
        _shadow_arguments(q)
    for name in ("set", "unset"):
        q = actions.choices[name]
        q.add_argument("--wait", action="store_true", help="wait until the device reports it")
        q.add_argument("--timeout", type=float, default=60, help="seconds --wait waits")
    q = actions.add_parser("watch", help="print the settings at every change")
    _shadow_arguments(q)
    q.add_argument("--interval", type=float, default=2.0, help="seconds between looks")
    q.add_argument("--count", type=int, help="stop after this many changes")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("stats", help="how the device has been used (its reported stats)")
    _shadow_arguments(p)
    p.add_argument("--plot", metavar="FILE.png", help="draw sessions by hour and by day")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("dashboard", help="a web page with every device: status, settings, use")
    p.add_argument("--endpoint-url", help="data-plane API, e.g. the local stand-in's "
                   "http://127.0.0.1:8080 (default: your AWS account's)")
    p.add_argument("--region", help="AWS region (default: your AWS configuration's)")
    p.add_argument("--thing", action="append", metavar="NAME", help="show only this thing "
                   "(repeat for more; default: every thing in the registry)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                   "%(default)s: this computer only; 0.0.0.0 shares it on your network)")
    p.add_argument("--port", type=int, default=DASHBOARD_PORT, help="default %(default)s")
    p.add_argument("--refresh", type=float, default=5.0, metavar="S",
                   help="seconds between the page's updates (default %(default)s)")
    p.set_defaults(func=cmd_dashboard)
    return parser


def _board_commands(sub) -> None:
    from .board.flash import DEFAULT_BAUD
    from .board.report import DEFAULT_JSON, SESSION_S

    p = sub.add_parser("flash", help="erase the board, write MicroPython, deploy the firmware")
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0 or COM5")
    p.add_argument("--firmware", required=True, metavar="BIN",
                   help="MicroPython image from micropython.org/download (the .bin)")
    p.add_argument("--chip", default="esp32")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD, help="esptool's baud rate")
    p.add_argument("--no-deploy", action="store_true", help="only MicroPython, no firmware")
    p.set_defaults(func=cmd_flash)

    p = sub.add_parser("deploy", help="copy the compiled firmware onto the board (what changed)")
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0 or COM5")
    p.add_argument("--no-reset", action="store_true", help="do not restart the firmware after")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("hw-report", help="heap after boot, session high-water, mem_info and TLS "
                       "handshake times, measured on the board")
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0 or COM5")
    p.add_argument("--session-s", type=float, default=SESSION_S, metavar="S",
                   help="how long the firmware runs for the high-water mark (default %(default)s)")
    p.add_argument("--json", default=str(DEFAULT_JSON), metavar="PATH",
                   help="also write the figures here (default %(default)s)")
    p.set_defaults(func=cmd_hw_report)

    p = sub.add_parser("provision", help="AWS IoT thing, certificate and policy; secrets "
                       "onto the board (Wi-Fi password: typed, or $%s)" % WIFI_PASSWORD_ENV)
    p.add_argument("thing", help="AWS IoT thing name: letters, digits, '-', '_'")
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0 or COM5")
    p.add_argument("--wifi-ssid", required=True)
    p.add_argument("--spotify-client-id", required=True, metavar="ID")
    p.add_argument("--region", help="AWS region (default: your AWS configuration's)")
    p.add_argument("--config", metavar="FILE.json", help="initial settings (see README)")
    p.add_argument("--pir-pin", type=int, metavar="N")
    p.add_argument("--led-pin", type=int, metavar="N")
    p.add_argument("--glitch-ms", type=int, metavar="N", help="ignore PIR pulses shorter than N ms")
    p.add_argument("--ota-pubkey", metavar="FILE", help="ota_pub.bin from `spotty ota keygen`")
    p.add_argument("--new-certificate", action="store_true",
                   help="create a new device certificate even if one is kept")
    p.add_argument("--certs-dir", metavar="DIR", help="host copies of device keys "
                   "(default: certs/devices)")
    p.add_argument("--token-file", metavar="F", help="the saved Spotify login")
    p.set_defaults(func=cmd_provision)


def _login_commands(sub) -> None:
    p = sub.add_parser("spotify-login", help="log in to Spotify in the browser; save the token "
                       "(and with --thing, send it to the device)")
    p.add_argument("--client-id", metavar="ID", help="your app's client id (default: the saved "
                   "login's)")
    p.add_argument("--port", type=int, default=spotify_login.DEFAULT_PORT,
                   help="for the redirect URI http://127.0.0.1:PORT/callback (default %(default)s)")
    p.add_argument("--accounts-url", default=spotify_login.DEFAULT_ACCOUNTS_URL)
    p.add_argument("--accounts-ca", metavar="FILE", help="CA (PEM or DER) to trust for "
                   "--accounts-url, e.g. `spotty mock-spotify`'s")
    p.add_argument("--token-file", metavar="F", help="where the login is saved "
                   "(default ~/.config/spotty/spotify-token.json)")
    p.add_argument("--thing", help="send the new token to this device over AWS IoT")
    p.add_argument("--endpoint-url", help="with --thing: data-plane API (default: your AWS "
                   "account's)")
    p.add_argument("--region", help="with --thing: AWS region")
    p.add_argument("--wait-timeout", type=float, default=60, metavar="S",
                   help="with --thing: seconds to wait for the device (default %(default)s)")
    p.set_defaults(func=cmd_spotify_login)


def _ota_commands(p) -> None:
    sub = p.add_subparsers(dest="ota_command", required=True)
    q = sub.add_parser("keygen", help="create the signing key pair")
    q.add_argument("dir", nargs="?", help="where: a private folder, not one of bundles "
                   "(default: ~/.config/spotty/ota)")
    q.set_defaults(func=cmd_ota_keygen)

    q = sub.add_parser("build", help="compile the firmware and sign it into a bundle")
    q.add_argument("--version", required=True, metavar="V")
    q.add_argument("--key", required=True, metavar="ota_key.pem")
    q.add_argument("--out", required=True, metavar="BUNDLE.spota")
    q.add_argument("--source", default=str(DEVICE_DIR), help="firmware tree (default: device/)")
    q.add_argument("--ca", metavar="DIR", help="also replace the device's CA roots with DIR/*.der")
    q.set_defaults(func=cmd_ota_build)

    q = sub.add_parser("show", help="a bundle's manifest; with --pub, verify it as a device does")
    q.add_argument("bundle")
    q.add_argument("--pub", metavar="ota_pub.bin")
    q.set_defaults(func=cmd_ota_show)

    q = sub.add_parser("push", help="ask a device to update (sets desired.ota in its shadow)")
    _shadow_arguments(q)
    q.add_argument("--url", required=True, help="https URL the device downloads the bundle from")
    q.add_argument("--bundle", required=True, help="the same bundle, for its size and sha256")
    q.add_argument("--pub", metavar="ota_pub.bin", help="check the signature before pushing")
    q.set_defaults(func=cmd_ota_push)

    q = sub.add_parser("status", help="what a device runs and how its last update went")
    _shadow_arguments(q)
    q.set_defaults(func=cmd_ota_status)

    q = sub.add_parser("serve", help="serve bundles over HTTPS (a local test server)")
    q.add_argument("dir", help="folder with the bundles (only bundles are served; a folder "
                   "with a private key in it is refused)")
    q.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                   "%(default)s: this machine only; e.g. 0.0.0.0 for boards on your network)")
    q.add_argument("--port", type=int, default=8443)
    q.add_argument("--ca-dir", default=".sim/ota-server",
                   help="its CA is kept here; put ca.der on the device to trust it")
    q.set_defaults(func=cmd_ota_serve)


def _shadow_arguments(p) -> None:
    p.add_argument("--thing", required=True, help="the device's AWS IoT thing name")
    p.add_argument("--endpoint-url", help="data-plane API (default: your AWS account's)")
    p.add_argument("--region", help="AWS region (default: your AWS configuration's)")


def main(argv=None) -> int:
    """Run a subcommand; its exit code, or one of errors.py's (listed in the README)."""
    args = build_parser().parse_args(argv)
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
