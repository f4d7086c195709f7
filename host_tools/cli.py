"""The `spotty` command: a table of subcommands over importable functions."""

import argparse
import json
import os
import sys
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
    from .mock_spotify import MockSpotify

    scenario = sim.validate_scenario(_read_json(args.scenario))
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
        result = sim.run(scenario, target, on_event=show)
    else:
        with MockSpotify() as mock:
            target = sim.SpotifyTarget(mock.url, mock.ca.cert_der)
            result = sim.run(scenario, target, on_event=show)
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

    def announce(info):
        print(json.dumps(info), flush=True)

    serve(args.host, args.port, Path(args.state_dir), announce)
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
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("demo", help="a short demo on the simulator")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("mock-spotify", help="serve the mock Spotify Web API over HTTPS")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8443)
    p.add_argument("--state-dir", default=".sim/mock-spotify", help="where its CA is written")
    p.set_defaults(func=cmd_mock_spotify)
    return parser


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
