"""The `spotty` command: a table of subcommands over importable functions."""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from .errors import SpottyError

SCENARIOS = Path(__file__).parent / "scenarios"


def _print_event(as_json):
    from .narrate import describe

    def show(event):
        if as_json:
            print(json.dumps(event), flush=True)
        else:
            line = describe(event)
            if line:
                print(line, flush=True)

    return show


def cmd_sim(args) -> int:
    from . import sim

    scenario = sim.validate_scenario(_read_json(args.scenario))
    if not args.iot:
        return _sim_spotify(args, scenario, None)
    from .shadow_service import IotLocal

    with IotLocal() as iot, tempfile.TemporaryDirectory() as keys:
        files = iot.issue_thing(args.thing, Path(keys))
        target = sim.IotTarget(iot.mqtt_host, iot.mqtt_port, args.thing,
                               files.ca_der.read_bytes(), files.cert_der.read_bytes(),
                               files.key_der.read_bytes(), iot.endpoint_url)
        code = _sim_spotify(args, scenario, target)
        if not args.json:
            from .remote_config import render_config
            from .shadow_client import ShadowClient

            print("\nThe shadow of %s after the run:" % args.thing)
            print(render_config(ShadowClient(args.thing, iot.endpoint_url).get()))
        return code


def _sim_spotify(args, scenario, iot) -> int:
    from . import sim
    from .mock_spotify import MockSpotify

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
        result = sim.run(scenario, target, on_event=show, iot=iot)
    else:
        with MockSpotify() as mock:
            target = sim.SpotifyTarget(mock.url, mock.ca.cert_der)
            result = sim.run(scenario, target, on_event=show, iot=iot)
            if not args.json:
                _print_calls(mock.requests())
    return _finish(result)


def cmd_demo(args) -> int:
    from . import sim
    from .mock_spotify import MockSpotify

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
    from .mock_spotify import serve

    serve(args.host, args.port, Path(args.state_dir), _announce)
    return 0


def cmd_iot_local(args) -> int:
    from .shadow_service import serve

    serve(Path(args.state_dir), args.mqtt_port, args.http_port, _announce)
    return 0


def _announce(info):
    print(json.dumps(info), flush=True)


def _shadow(args):
    from .shadow_client import ShadowClient

    return ShadowClient(args.thing, args.endpoint_url, args.region)


def cmd_config(args) -> int:
    from . import remote_config

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
    from . import remote_config

    document = _shadow(args).get()
    print(remote_config.render_stats(document))
    if args.plot:
        remote_config.plot_stats(document, args.plot)
        print("\nplot written to %s" % args.plot)
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

    p = sub.add_parser("sim", help="run the firmware on the simulated board")
    p.add_argument("scenario", help="scenario JSON file")
    p.add_argument("--json", action="store_true", help="one JSON line per firmware event")
    p.add_argument("--spotify-url", help="a Spotify-compatible server (default: a local mock)")
    p.add_argument("--spotify-ca", help="CA certificate (PEM or DER) to trust for that server")
    p.add_argument("--client-id", default="spotty-test-client", help="Spotify client id")
    p.add_argument("--iot", action="store_true",
                   help="with the shadow link, against a local AWS IoT stand-in (needs mosquitto)")
    p.add_argument("--thing", default="sim-bathroom", help="thing name with --iot")
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
    p.add_argument("action", choices=["get", "set", "unset", "watch"])
    p.add_argument("values", nargs="*", help="KEY=VALUE for set, KEY for unset")
    _shadow_arguments(p)
    p.add_argument("--wait", action="store_true", help="set/unset: wait for the device")
    p.add_argument("--timeout", type=float, default=60, help="seconds --wait waits")
    p.add_argument("--json", action="store_true", help="get: the raw shadow document")
    p.add_argument("--interval", type=float, default=2.0, help="watch: seconds between looks")
    p.add_argument("--count", type=int, help="watch: stop after this many changes")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("stats", help="how the device has been used (its reported stats)")
    _shadow_arguments(p)
    p.add_argument("--plot", metavar="FILE.png", help="draw sessions by hour and by day")
    p.set_defaults(func=cmd_stats)
    return parser


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
