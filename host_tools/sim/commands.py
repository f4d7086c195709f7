"""`spotty sim` and `spotty demo`: the firmware on the simulated board."""

import argparse
import contextlib
import json
import os
import re
import tempfile
from pathlib import Path

from ..common.cmdline import plural, read_json
from ..common.errors import RefusedError, SpottyError, UsageError
from .runtime import micropython_path

SCENARIOS = Path(__file__).parent / "scenarios"
DEFAULT_IOT_STATE = ".sim/iot-local"  # `spotty iot-local`'s default --state-dir


def heapsize_arg(text: str) -> str:
    """A MicroPython `-X heapsize` value: bytes, or K/M multiples (88K, 1M)."""
    match = re.fullmatch(r"(\d+)([KkMm]?)", text.strip())
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError("%r is not a heap size such as 88K or 1M" % text)
    number, unit = match.groups()
    kb = int(number) * {"": 1 / 1024, "k": 1, "m": 1024}[unit.lower()]
    if kb < 16:
        raise argparse.ArgumentTypeError("%s is too small for MicroPython to start" % text)
    return number + unit.upper()


def _print_event(as_json, scenario):
    from .narrate import Narrator

    narrator = Narrator(scenario["clock_utc"], scenario["config"].get("tz", "UTC0"))

    def show(event):
        if as_json:
            print(json.dumps(event), flush=True)
        else:
            line = narrator.line(event)
            if line:
                print(line, flush=True)

    return show


def check_speaker(scenario: dict) -> None:
    """The mock Spotify has no active speaker: without spotify_device the firmware would
    retry no_active_device for good, and a name it does not list is never found."""
    from ..spotify.mock_web_api import DEFAULT_DEVICES

    wanted = scenario["config"].get("spotify_device", "")
    if any(wanted in (d["name"], d["id"]) for d in DEFAULT_DEVICES):
        return
    if not wanted and any("spotify_device" in e.get("desired", {}) for e in scenario["events"]):
        return  # a desired event names it later
    names = ", ".join(d["name"] for d in DEFAULT_DEVICES)
    if not wanted:
        raise RefusedError('the scenario names no speaker, and the mock Spotify has none '
                           'playing: add "spotify_device" to its "config", one of: %s' % names)
    raise RefusedError("spotify_device %r is not a speaker the mock Spotify knows: one of: %s"
                       % (wanted, names))


def cmd_sim(args) -> int:
    from . import runner as sim

    scenario = sim.validate_scenario(read_json(args.scenario))
    if args.spotify_url:
        from ..spotify.login import refuse_client_secret

        refuse_client_secret()  # before any server starts
    else:
        check_speaker(scenario)
    if args.flash:
        Path(args.flash).mkdir(parents=True, exist_ok=True)
    running = args.endpoint_url or args.state_dir
    if not (args.iot or running):
        return _sim_spotify(args, scenario, None)
    from ..aws.iot_local import IotLocal, RunningIotLocal

    with contextlib.ExitStack() as stack:
        if running:  # a `spotty iot-local` the user keeps running: the shadow stays there
            iot = RunningIotLocal(Path(args.state_dir or DEFAULT_IOT_STATE), args.endpoint_url)
        else:
            iot = stack.enter_context(IotLocal(
                tls_delay_ms=sim.ESP32_MUTUAL_TLS_MS if args.esp32_tls else 0))
        keys = stack.enter_context(tempfile.TemporaryDirectory())
        files = iot.issue_thing(args.thing, Path(keys))
        target = sim.IotTarget(iot.mqtt_host, iot.mqtt_port, args.thing,
                               files.ca_der.read_bytes(), files.cert_der.read_bytes(),
                               files.key_der.read_bytes(), iot.endpoint_url)
        code = _sim_spotify(args, scenario, target)
        from ..aws.shadow_client import ShadowClient

        document = ShadowClient(args.thing, iot.endpoint_url).get()
        if args.json:  # as get_thing_shadow returns it, for scripts
            print(json.dumps({"ev": "shadow", "document": document}), flush=True)
        else:
            from ..aws.remote_config import render_config

            print("\nThe shadow of %s after the run:" % args.thing)
            print(render_config(document))
        return code


def _sim_spotify(args, scenario, iot) -> int:
    from ..spotify.mock import MockSpotify
    from . import runner as sim

    show = _print_event(args.json, scenario)
    if args.spotify_url:
        if not args.spotify_ca:
            raise UsageError("--spotify-url needs --spotify-ca (the server's CA, PEM or DER)")
        # The token comes from the environment, never the command line (ps shows it).
        target = sim.target_from_files(
            args.spotify_url, args.spotify_ca, args.client_id,
            os.environ.get("SPOTIFY_REFRESH_TOKEN", "refresh-0"),
        )
        result = sim.run(scenario, target, on_event=show, iot=iot, install_firmware=args.install,
                         heapsize=args.heapsize, flash=_flash(args))
    else:
        with MockSpotify(tls_delay_ms=sim.ESP32_TLS_MS if args.esp32_tls else 0) as mock:
            target = sim.SpotifyTarget(mock.url, mock.ca.cert_der)
            result = sim.run(scenario, target, on_event=show, iot=iot,
                             install_firmware=args.install, heapsize=args.heapsize,
                             flash=_flash(args))
            if not args.json:
                _print_calls(mock.requests())
    if args.heapsize:
        _judge_heap(args.heapsize, result, quiet=args.json)
    return _finish(result)


def _flash(args) -> Path | None:
    return Path(args.flash).resolve() if args.flash else None  # the board runs in it


def _judge_heap(heapsize: str, result, quiet: bool) -> None:
    """Under a heap budget, running out of memory anywhere fails the run, said plainly."""
    texts = result.console + [e.get("error", "") for e in result.named("crash")]
    if any("MemoryError" in text for text in texts):
        tail = "\n".join(result.console[-12:])
        raise SpottyError("the firmware ran out of memory with a %s heap:\n%s" % (heapsize, tail))
    if not quiet:
        print("\nThe firmware ran within a %s GC heap (interpreter: %s)." % (
            heapsize, micropython_path()))


def cmd_demo(args) -> int:
    from ..spotify.mock import MockSpotify
    from . import runner as sim

    scenario = sim.validate_scenario(read_json(SCENARIOS / "demo.json"))
    print("SpottyPottySense demo: the real firmware on the unix-port MicroPython, a simulated")
    print("PIR sensor and a local mock Spotify. Bathroom speaker, pause after 4 s without")
    print("motion, quiet hours 22:00-07:00 (Central European Time); it is 21:59:40 there.\n")
    with MockSpotify() as mock:
        result = sim.run(
            scenario, sim.SpotifyTarget(mock.url, mock.ca.cert_der),
            on_event=_print_event(False, scenario)
        )
        _print_calls(mock.requests())
    return _finish(result)


def _print_calls(requests):
    calls = len([r for r in requests if r["path"] != "/api/token"])
    refreshes = len(requests) - calls
    print("\nSpotify saw %s and %s:" % (
        plural(calls, "API call"), plural(refreshes, "token refresh", "token refreshes")))
    for r in requests:
        query = "&".join("%s=%s" % kv for kv in r.get("query", {}).items())
        print("  %-4s %s%s -> %s" % (r["method"], r["path"], "?" + query if query else "",
                                     r.get("status")))


def _finish(result) -> int:
    if result.returncode != 0:
        tail = "\n".join(result.console[-20:])
        raise SpottyError("the firmware exited with %s:\n%s" % (result.returncode, tail))
    return 0
