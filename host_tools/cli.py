"""The `spotty` command: a table of subcommands over importable functions."""

import argparse
import contextlib
import getpass
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .board.transport import Transport
from .common.devicepath import DEVICE_DIR
from .common.errors import SpottyError
from .spotify import login as spotify_login

SCENARIOS = Path(__file__).parent / "sim" / "scenarios"
# After esptool resets it, a freshly flashed board boots and formats its filesystem:
# keystrokes sent before its REPL runs are lost.
FIRST_BOOT_S = 3.0
WIFI_PASSWORD_ENV = "SPOTTY_WIFI_PASSWORD"
REFRESH_TOKEN_ENV = "SPOTIFY_REFRESH_TOKEN"


def _print_event(as_json):
    from .sim.narrate import describe

    def show(event):
        if as_json:
            print(json.dumps(event), flush=True)
        else:
            line = describe(event)
            if line:
                print(line, flush=True)

    return show


def cmd_sim(args) -> int:
    from .sim import runner as sim

    scenario = sim.validate_scenario(_read_json(args.scenario))
    if not args.iot:
        return _sim_spotify(args, scenario, None)
    from .aws.iot_local import IotLocal

    with IotLocal() as iot, tempfile.TemporaryDirectory() as keys:
        files = iot.issue_thing(args.thing, Path(keys))
        target = sim.IotTarget(iot.mqtt_host, iot.mqtt_port, args.thing,
                               files.ca_der.read_bytes(), files.cert_der.read_bytes(),
                               files.key_der.read_bytes(), iot.endpoint_url)
        code = _sim_spotify(args, scenario, target)
        if not args.json:
            from .aws.remote_config import render_config
            from .aws.shadow_client import ShadowClient

            print("\nThe shadow of %s after the run:" % args.thing)
            print(render_config(ShadowClient(args.thing, iot.endpoint_url).get()))
        return code


def _sim_spotify(args, scenario, iot) -> int:
    from .sim import runner as sim
    from .spotify.mock import MockSpotify

    show = _print_event(args.json)
    if args.spotify_url:
        if not args.spotify_ca:
            raise SpottyError("--spotify-url needs --spotify-ca (the server's CA, PEM or DER)")
        # Secrets come from the environment, never the command line (ps shows it).
        target = sim.target_from_files(
            args.spotify_url, args.spotify_ca, args.client_id,
            os.environ.get("SPOTIFY_CLIENT_SECRET"),
            os.environ.get("SPOTIFY_REFRESH_TOKEN", "refresh-0"),
        )
        result = sim.run(scenario, target, on_event=show, iot=iot, install_firmware=args.install)
    else:
        with MockSpotify() as mock:
            target = sim.SpotifyTarget(mock.url, mock.ca.cert_der)
            result = sim.run(scenario, target, on_event=show, iot=iot,
                             install_firmware=args.install)
            if not args.json:
                _print_calls(mock.requests())
    return _finish(result)


def cmd_demo(args) -> int:
    from .sim import runner as sim
    from .spotify.mock import MockSpotify

    scenario = sim.validate_scenario(_read_json(SCENARIOS / "demo.json"))
    print("SpottyPottySense demo: the real firmware on the unix-port MicroPython, a simulated")
    print("PIR sensor and a local mock Spotify. Bathroom speaker, pause after 4 s without")
    print("motion, quiet hours 22:00-07:00 (Central European Time); it is 21:59:40 there.\n")
    with MockSpotify() as mock:
        result = sim.run(
            scenario, sim.SpotifyTarget(mock.url, mock.ca.cert_der), on_event=_print_event(False)
        )
        _print_calls(mock.requests())
    return _finish(result)


def cmd_mock_spotify(args) -> int:
    from .spotify.mock import serve

    serve(args.host, args.port, Path(args.state_dir), _announce)
    return 0


def cmd_iot_local(args) -> int:
    from .aws.iot_local import serve

    serve(Path(args.state_dir), args.mqtt_port, args.http_port, _announce)
    return 0


def _announce(info):
    print(json.dumps(info), flush=True)


def _shadow(args):
    from .aws.shadow_client import ShadowClient

    return ShadowClient(args.thing, args.endpoint_url, args.region)


def cmd_config(args) -> int:
    from .aws import remote_config

    shadow = _shadow(args)
    if args.action == "get":
        document = shadow.get()
        shown = json.dumps(document, indent=2) if args.json else None
        print(shown or remote_config.render_config(document))
        return 0
    if args.action == "watch":
        remote_config.watch(shadow.get, print, args.interval, args.count)
        return 0
    if args.action == "set":
        wanted = remote_config.parse_assignments(args.values)
    else:
        wanted = remote_config.defaults_for(args.values)
    version = shadow.set_desired(wanted)
    print("desired config of %s updated (shadow version %d): %s" % (
        args.thing, version, ", ".join("%s=%s" % (k, json.dumps(v)) for k, v in wanted.items())))
    if args.wait:
        document = remote_config.wait_until_reported(shadow.get, wanted, args.timeout)
        print("the device applied it:\n" + remote_config.render_config(document))
    return 0


def cmd_stats(args) -> int:
    from .aws import remote_config

    document = _shadow(args).get()
    print(remote_config.render_stats(document))
    if args.plot:
        remote_config.plot_stats(document, args.plot)
        print("\nplot written to %s" % args.plot)
    return 0


# -- a board on a serial port ------------------------------------------------------


@contextlib.contextmanager
def _board(port: str, attempts: int = 1) -> Iterator[Transport]:
    from .board.transport import BoardError, MpremoteTransport

    for attempt in range(1, attempts + 1):
        try:
            transport = MpremoteTransport.open(port)
            break
        except BoardError:
            if attempt == attempts:
                raise
            time.sleep(FIRST_BOOT_S)
    try:
        yield transport
    finally:
        transport.close()


def _deploy(port: str, reset: bool, attempts: int = 1) -> int:
    from .board.deploy import deploy

    with _board(port, attempts) as board:
        deploy(board, DEVICE_DIR, sys.stdout)
        if reset:
            board.soft_reset()
            print("soft reset: the firmware is starting")
    return 0


def cmd_flash(args) -> int:
    from .board.flash import flash

    flash(args.port, args.firmware, args.chip, args.baud)
    print("MicroPython is on the board; the flash was erased, so provision it again.")
    if args.no_deploy:
        return 0
    time.sleep(FIRST_BOOT_S)
    return _deploy(args.port, reset=True, attempts=2)


def cmd_deploy(args) -> int:
    return _deploy(args.port, reset=not args.no_reset)


# -- provisioning and the Spotify login --------------------------------------------


def _wifi_password(ssid: str) -> str:
    """From the environment (scripts) or typed without echo; empty for an open network."""
    if WIFI_PASSWORD_ENV in os.environ:
        return os.environ[WIFI_PASSWORD_ENV]
    try:
        return getpass.getpass("Wi-Fi password for %s (empty for an open network): " % ssid)
    except EOFError as e:
        raise SpottyError("no Wi-Fi password given (or set %s)" % WIFI_PASSWORD_ENV) from e


def _token_file(args) -> Path:
    return Path(args.token_file) if args.token_file else spotify_login.default_token_file()


def _saved_refresh_token(args) -> tuple[str | None, int | None]:
    """(refresh token, issued_at): the environment's, else the saved login's, else none."""
    if os.environ.get(REFRESH_TOKEN_ENV):
        return os.environ[REFRESH_TOKEN_ENV], None
    path = _token_file(args)
    if not path.exists():
        return None, None
    token = spotify_login.load_token(path)
    if token.client_id != args.spotify_client_id:
        raise SpottyError(
            "the Spotify login saved in %s is for client id %s, not %s: log in again with "
            "`spotty spotify-login --client-id %s`"
            % (path, token.client_id, args.spotify_client_id, args.spotify_client_id))
    return token.refresh_token, token.issued_at


def _hardware(args) -> dict | None:
    hardware = {k: getattr(args, k) for k in ("pir_pin", "led_pin", "glitch_ms")}
    return {k: v for k, v in hardware.items() if v is not None} or None


def _read_bytes(path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise SpottyError("cannot read %s: %s" % (path, e.strerror)) from e


def cmd_provision(args) -> int:
    from .aws import provision as prov
    from .aws.iot_thing import make_iot_client

    config = _read_json(args.config) if args.config else None
    if config is not None and not isinstance(config, dict):
        raise SpottyError("%s: the settings must be a JSON object" % args.config)
    ota_key = _read_bytes(args.ota_pubkey) if args.ota_pubkey else None
    refresh_token, issued_at = _saved_refresh_token(args)
    password = _wifi_password(args.wifi_ssid)
    iot = make_iot_client(args.region)
    with _board(args.port) as board:
        prov.provision(
            args.thing, board, iot,
            wifi_ssid=args.wifi_ssid,
            wifi_password=password,
            spotify_client_id=args.spotify_client_id,
            spotify_client_secret=os.environ.get(spotify_login.CLIENT_SECRET_ENV) or None,
            spotify_refresh_token=refresh_token,
            spotify_token_issued_at=issued_at,
            initial_config=config,
            hardware=_hardware(args),
            ota_public_key=ota_key,
            certs_dir=Path(args.certs_dir) if args.certs_dir else prov.DEFAULT_CERTS_DIR,
            new_certificate=args.new_certificate,
            out=sys.stdout,
        )
        board.soft_reset()
    print("soft reset: %s is starting and connects to Wi-Fi and AWS IoT" % args.thing)
    return 0


def cmd_spotify_login(args) -> int:
    path = _token_file(args)
    client_id = args.client_id or _saved_client_id(path)
    if args.endpoint_url and not args.thing:
        raise SpottyError("--endpoint-url is for the token push: it goes with --thing")
    # Made before the browser step, so a missing AWS setup fails before the login.
    shadow = _shadow(args) if args.thing else None
    ca = _read_bytes(args.accounts_ca) if args.accounts_ca else None
    token = spotify_login.login(
        client_id, port=args.port, accounts_url=args.accounts_url,
        client_secret=os.environ.get(spotify_login.CLIENT_SECRET_ENV) or None, ca=ca,
    )
    spotify_login.save_token(path, token)
    print("Spotify login saved in %s (readable by you only)" % path)
    if shadow is None:
        return 0
    spotify_login.push_token(shadow.publish, args.thing, token)
    print("token sent to %s; waiting up to %d s for it to confirm..." % (
        args.thing, args.wait_timeout))
    spotify_login.wait_for_device(shadow.get, args.thing, token.issued_at, args.wait_timeout)
    print("%s has stored the new token" % args.thing)
    return 0


def _saved_client_id(path: Path) -> str:
    if not path.exists():
        raise SpottyError("--client-id is needed: your app's client id from "
                          "developer.spotify.com")
    return spotify_login.load_token(path).client_id


# -- OTA bundles -------------------------------------------------------------------


def cmd_ota_keygen(args) -> int:
    from .ota import bundles as ota

    private_path, public_path = ota.keygen(Path(args.dir))
    print("private key %s (0600): keep it safe and offline; it signs every update" %
          private_path)
    print("public key  %s: give it to `spotty provision --ota-pubkey`" % public_path)
    return 0


def cmd_ota_build(args) -> int:
    from .ota import bundles as ota

    info = ota.build(Path(args.source), args.version, Path(args.key), Path(args.out),
                     Path(args.ca) if args.ca else None)
    print("%s: version %s, %d files, %d bytes, sha256 %s" % (
        args.out, info["version"], len(info["files"]), info["size"], info["sha256"]))
    return 0


def cmd_ota_push(args) -> int:
    from .ota import push as ota_push

    request = ota_push.push(args.thing, args.url, Path(args.bundle), args.endpoint_url,
                            Path(args.pub) if args.pub else None, args.region)
    print("desired.ota of %s set: version %s, %d bytes, sha256 %s" % (
        args.thing, request["version"], request["size"], request["sha256"]))
    print("the device downloads it when idle; follow with `spotty ota status --thing %s`"
          % args.thing)
    return 0


def cmd_ota_status(args) -> int:
    from .ota import push as ota_push

    state = ota_push.status(args.thing, args.endpoint_url, args.region)
    reported = state["reported"] or {}
    print("running firmware: %s" % (state["firmware"] or "unknown"))
    print("requested:        %s" % (state["desired"] or {}).get("version", "nothing pending"))
    print("last update:      %s %s%s" % (
        reported.get("version", "-"), reported.get("status", ""),
        " (%s)" % reported["reason"] if reported.get("reason") else ""))
    return 0


def cmd_ota_serve(args) -> int:
    from .ota.server import serve

    serve(Path(args.dir), args.host, args.port, Path(args.ca_dir), _announce)
    return 0


def cmd_ota_show(args) -> int:
    from .ota import bundles as ota

    manifest = ota.read_manifest(Path(args.bundle), Path(args.pub) if args.pub else None)
    print("version %s (format %d), %d files:" % (
        manifest["version"], manifest["format"], len(manifest["files"])))
    for entry in manifest["files"]:
        print("  %8d  %s  %s" % (entry["size"], entry["sha256"][:16], entry["path"]))
    if args.pub:
        print("signature and contents: valid for %s" % args.pub)
    else:
        print("signature: not checked (pass --pub ota_pub.bin)")
    return 0


def _print_calls(requests):
    calls = [r for r in requests if r["path"] != "/api/token"]
    print("\nSpotify saw %d API calls and %d token refreshes:" % (
        len(calls), len(requests) - len(calls)))
    for r in requests:
        query = "&".join("%s=%s" % kv for kv in r.get("query", {}).items())
        print("  %-4s %s%s -> %s" % (r["method"], r["path"], "?" + query if query else "",
                                     r.get("status")))


def _finish(result) -> int:
    if result.returncode != 0:
        tail = "\n".join(result.console[-20:])
        raise SpottyError("the firmware exited with %s:\n%s" % (result.returncode, tail))
    return 0


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except OSError as e:
        raise SpottyError("cannot read %s: %s" % (path, e.strerror)) from e
    except ValueError as e:
        raise SpottyError("%s is not valid JSON: %s" % (path, e)) from e


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
    p.add_argument("--install", action="store_true",
                   help="compile the firmware into the simulated flash and run it from there, "
                   "as on a board (.mpy; OTA swaps real files)")
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
    return parser


def _board_commands(sub) -> None:
    from .board.flash import DEFAULT_BAUD

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
    q.add_argument("dir", nargs="?", default=".", help="where (default: here)")
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
    q.add_argument("dir", help="folder with the bundles")
    q.add_argument("--host", default="0.0.0.0")
    q.add_argument("--port", type=int, default=8443)
    q.add_argument("--ca-dir", default=".sim/ota-server",
                   help="its CA is kept here; put ca.der on the device to trust it")
    q.set_defaults(func=cmd_ota_serve)


def _shadow_arguments(p) -> None:
    p.add_argument("--thing", required=True, help="the device's AWS IoT thing name")
    p.add_argument("--endpoint-url", help="data-plane API (default: your AWS account's)")
    p.add_argument("--region", help="AWS region (default: your AWS configuration's)")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SpottyError as e:
        print("spotty: %s" % e, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
