"""`spotty iot-local`, `config`, `stats` and `provision`."""

import getpass
import json
import os
import sys
from pathlib import Path

from ..board.commands import board_port, open_board
from ..common import settings
from ..common.cmdline import announce, read_bytes, read_json
from ..common.errors import RefusedError, SpottyError
from ..spotify import login as spotify_login
from ..spotify.commands import saved_refresh_token
from .shadow_client import ShadowClient

WIFI_PASSWORD_ENV = "SPOTTY_WIFI_PASSWORD"


def cmd_iot_local(args) -> int:
    from ..common.serving import check_can_listen
    from .broker import HOST
    from .iot_local import serve

    check_can_listen(HOST, args.http_port, "--http-port")
    check_can_listen(HOST, args.mqtt_port, "--mqtt-port")
    serve(Path(args.state_dir), args.mqtt_port, args.http_port, announce, args.tls_delay_ms)
    return 0


def cmd_config(args) -> int:
    from . import remote_config

    shadow = ShadowClient.from_args(args)
    if args.action == "get":
        document = shadow.get()
        shown = json.dumps(document, indent=2) if args.json else None
        print(shown or remote_config.render_config(document))
        return 0
    if args.action == "watch":
        remote_config.watch(shadow.get, print, args.interval, args.count)
        return 0
    if args.action == "set":
        wanted, notes = remote_config.parse_assignments(args.values)
    else:
        wanted, notes = remote_config.defaults_for(args.values), []
    for note in notes:
        print(note)
    warning = remote_config.unknown_thing_warning(shadow, shadow.get())
    if warning:
        print("spotty: warning: %s" % warning, file=sys.stderr)
    version = shadow.set_desired(remote_config.for_shadow(wanted))
    if args.action == "set":
        print("desired config of %s updated (shadow version %d): %s" % (
            args.thing, version, remote_config.describe(wanted)))
    else:
        for key in wanted:
            print(remote_config.back_to_default(key))
        print("desired config of %s updated (shadow version %d)" % (args.thing, version))
    if args.wait:
        document = remote_config.wait_until_reported(shadow.get, wanted, args.timeout)
        print("the device applied it:\n" + remote_config.render_config(document))
    return 0


def cmd_stats(args) -> int:
    from . import usage

    document = ShadowClient.from_args(args).get()
    print(usage.render_stats(document))
    if args.plot:
        usage.plot_stats(document, args.thing, args.plot)
        print("\nplot written to %s" % args.plot)
    return 0


# -- provisioning ------------------------------------------------------------------


def _wifi_password(ssid: str) -> str:
    """From the environment (scripts) or typed without echo; empty for an open network."""
    if WIFI_PASSWORD_ENV in os.environ:
        return os.environ[WIFI_PASSWORD_ENV]
    try:
        return getpass.getpass("Wi-Fi password for %s (empty for an open network): " % ssid)
    except EOFError as e:
        raise SpottyError("no Wi-Fi password given (or set %s)" % WIFI_PASSWORD_ENV) from e


def _hardware(args) -> dict | None:
    hardware = {k: getattr(args, k) for k in ("pir_pin", "led_pin", "glitch_ms")}
    return {k: v for k, v in hardware.items() if v is not None} or None


def cmd_provision(args) -> int:
    from . import provision as prov
    from .iot_thing import make_iot_client

    # Every check before the password prompt, the port and AWS: a typo costs nothing.
    spotify_login.refuse_client_secret()
    prov.check_thing_name(args.thing)
    prov.check_wifi(args.wifi_ssid, "")
    config = read_json(args.config) if args.config else None
    if config is not None:
        if not isinstance(config, dict):
            raise RefusedError("%s: the settings must be a JSON object" % args.config)
        config, notes = settings.check(config, "initial configuration refused")
        for note in notes:
            print(note)
    ota_key = read_bytes(args.ota_pubkey) if args.ota_pubkey else None
    ota_cas = {path: read_bytes(path) for path in args.ota_ca or ()}
    prov.optional_files(config, _hardware(args), ota_key, ota_cas)
    refresh_token, issued_at = saved_refresh_token(args)
    port = board_port(args)
    password = _wifi_password(args.wifi_ssid)
    prov.check_wifi(args.wifi_ssid, password)
    iot = make_iot_client(args.region)
    with open_board(port) as board:
        prov.provision(
            args.thing, board, iot,
            wifi_ssid=args.wifi_ssid,
            wifi_password=password,
            spotify_client_id=args.spotify_client_id,
            spotify_refresh_token=refresh_token,
            spotify_token_issued_at=issued_at,
            initial_config=config,
            hardware=_hardware(args),
            ota_public_key=ota_key,
            ota_cas=ota_cas,
            certs_dir=Path(args.certs_dir) if args.certs_dir else prov.DEFAULT_CERTS_DIR,
            new_certificate=args.new_certificate,
            out=sys.stdout,
        )
        board.soft_reset()
    print("soft reset: %s is starting and connects to Wi-Fi and AWS IoT" % args.thing)
    return 0
