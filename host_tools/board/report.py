"""`spotty hw-report` (`make hw-report PORT=...`): memory and TLS figures from a real board.

Snippets run on the board over mpremote's raw REPL, where main.py does not run, and share
its globals from one snippet to the next:

1. boot: after a collection, the live heap is noted; then what main.py imports before the
   app loop (rare, store, the board adapter, app and everything app imports) is imported
   and the board adapter built. The heap grown since, after another collection, is the
   heap after boot; the free heap is what the session has left.
2. tls: Wi-Fi up and the clock set, as the firmware does, then one TLS handshake each to
   the Spotify API and to the AWS IoT endpoint (port 8883, with the thing's certificate),
   with the firmware's own contexts (net.tls: CERT_REQUIRED, each with its own trust list
   in ca/). Only the handshake is timed, not DNS nor the TCP connect.
3. session: the firmware's app runs for a bounded window (it is what app.main runs, less
   the watchdog and the restart on a crash) while a sampler collects and reads the live
   heap every 100 ms; the largest reading, less what this snippet's own code takes, is the
   session high-water. A peak between two samples is missed: the figure is a lower bound.
   After the window the app is cancelled and its connections closed.
4. micropython.mem_info() after the session, verbatim.

The heap figures count from the baseline of step 1, so they compare with the same figures
taken on the 32-bit interpreter by `make bench` (host_tools/bench/board_lines.py). No
snippet prints a secret: the report reads only figures, host names and error texts.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import TextIO

from ..bench.board_lines import format_lines
from ..common.errors import RefusedError
from .transport import MAINTENANCE_WDT_MS, BoardError, Transport

SESSION_S = 90
# The board's watchdog is re-armed for maintenance (transport.py) and nothing feeds it while
# the report runs: the whole report must end well within it.
MAX_SESSION_S = MAINTENANCE_WDT_MS // 1000 - 600
DEFAULT_JSON = Path(".sim/hw-report.json")
MARK = "@hw "
BOOT_TIMEOUT_S = 30
# Silence allowed while the board brings Wi-Fi up (20 s at most), asks NTP and makes two
# handshakes (30 s socket timeout each).
TLS_TIMEOUT_S = 120
SESSION_GRACE_S = 60  # beyond the window: the app's cancellation, closing its connections

_BOOT = """
import gc, sys, json
gc.collect()
hw_base = gc.mem_alloc()
import rare, store
if sys.platform == 'esp32':
    from board.esp32 import Board
else:
    from board.sim import Board
import app
hw_settings = store.load_json('device.json', {})[0]
hw_board = Board(hw_settings)
gc.collect()
print('@hw', json.dumps({'base': hw_base, 'boot': gc.mem_alloc(), 'free': gc.mem_free(),
    'machine': getattr(sys.implementation, '_machine', sys.platform), 'version': sys.version}))
"""

_TLS = """
import socket, time, asyncio

def hw_handshake_us(host, port, ctx):
    address = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][-1]
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(30)
        s.connect(address)
        started = time.ticks_us()
        s = ctx.wrap_socket(s, server_hostname=host)
        return time.ticks_diff(time.ticks_us(), started)
    finally:
        s.close()

def hw_error(e):  # on one line: mbedTLS' messages may hold line breaks
    return ' '.join(('%s: %s' % (type(e).__name__, e)).split())

def hw_tls():
    import certs
    import spotify_account
    from net import https, tls
    secrets, problem = store.load_json('secrets.json', None)
    if secrets is None:
        why = 'skipped: not provisioned (secrets.json %s)' % problem
        return {'spotify': why, 'aws': why}
    try:
        asyncio.run(hw_board.connect_network(secrets.get('wifi_ssid'),
                                             secrets.get('wifi_password')))
        hw_board.sync_clock()
    except OSError as e:
        why = 'skipped: no network or no clock (%s)' % hw_error(e)
        return {'spotify': why, 'aws': why}
    roots, iot_roots = certs.roots('spotify'), certs.roots('iot')
    if not roots:
        why = 'skipped: no CA roots in ca/spotify/'
        return {'spotify': why, 'aws': why}
    out = {}
    ctx = tls.context(roots)
    api = https.Client(secrets.get('spotify_api_url', spotify_account.API_URL), ctx)
    out['spotify_at'] = '%s:%d' % (api.host, api.port)
    try:
        out['spotify'] = hw_handshake_us(api.host, api.port, ctx)
    except (OSError, ValueError) as e:
        out['spotify'] = 'failed: ' + hw_error(e)
    api = ctx = None
    endpoint, port = secrets.get('iot_endpoint'), secrets.get('iot_port', 8883)
    if not endpoint or not secrets.get('thing_name'):
        out['aws'] = 'skipped: not provisioned for AWS IoT (no endpoint or thing name)'
        return out
    out['aws_at'] = '%s:%d' % (endpoint, port)
    try:
        with open('iot/cert.der', 'rb') as f:
            cert = f.read()
        with open('iot/key.der', 'rb') as f:
            key = f.read()
    except OSError:
        out['aws'] = 'skipped: no device certificate (iot/cert.der, iot/key.der)'
        return out
    try:
        if not iot_roots:
            raise ValueError('no CA roots in ca/iot/')
        out['aws'] = hw_handshake_us(endpoint, port, tls.context(iot_roots, cert, key))
    except (OSError, ValueError) as e:
        out['aws'] = 'failed: ' + hw_error(e)
    return out

print('@hw', json.dumps(hw_tls()))
del hw_tls, hw_error, hw_handshake_us
gc.collect()
"""

_SESSION = """
import asyncio, gc, micropython, sys
gc.collect()
hw_start = gc.mem_alloc()  # this snippet's own code is in the heap now: not the firmware's
hw_high = 0

async def hw_sample():
    global hw_high
    while True:
        gc.collect()
        used = gc.mem_alloc()
        if used > hw_high:
            hw_high = used
            micropython.mem_info()  # its "max blk sz": the largest block, at each new high
        await asyncio.sleep_ms(100)

async def hw_session(window_ms):
    sampler = asyncio.create_task(hw_sample())
    running = error = None
    try:
        running = app.App(hw_board, hw_settings)
        await asyncio.wait_for_ms(running.run(), window_ms)
    except asyncio.TimeoutError:
        pass
    except Exception as e:
        error = '%s: %s' % (type(e).__name__, e)
    sampler.cancel()
    if running is not None:
        # The app's tasks are cancelled; close what it holds open, the shadow link too.
        await running.cloud.stop()
        running.spotify_down()
    return error

hw_error = asyncio.run(hw_session(WINDOW_MS))
asyncio.new_event_loop()
print('@hw', json.dumps({'start': hw_start, 'high': hw_high, 'error': hw_error,
                        'block': 16 if sys.maxsize < 2 ** 32 else 32}))
del hw_sample, hw_session, hw_start, hw_high, hw_error
gc.collect()
"""

_MEM_INFO = """
import gc, micropython
gc.collect()
micropython.mem_info()
"""


def _result(output: str, step: str) -> dict:
    for line in output.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    tail = "\n".join(output.strip().splitlines()[-5:])
    raise BoardError("the board gave no %s figures; it printed:\n%s" % (step, tail))


def _largest_block(output: str) -> int:
    """The largest "max blk sz" (in GC blocks) that mem_info printed during the session."""
    sizes = [int(n) for n in re.findall(r"max blk sz: (\d+)", output)]
    return max(sizes, default=0)


def _kb(size: int) -> float:
    return round(size / 1024, 1)


def _session_events(output: str) -> dict[str, int]:
    """How many of each firmware event (log.py's JSON lines) the session printed."""
    names: Counter[str] = Counter()
    for line in output.splitlines():
        if line.startswith("{"):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and isinstance(event.get("ev"), str):
                names[event["ev"]] += 1
    return dict(names)


def check_window(session_s: float) -> None:
    if not 1 <= session_s <= MAX_SESSION_S:
        raise RefusedError("the session window is 1 to %d seconds, not %g" % (
            MAX_SESSION_S, session_s))


def collect(board: Transport, session_s: float, say) -> dict:
    """Run the four steps on the board; the figures (board_lines' keys) and their context.
    say(text) tells the user what happens (stderr)."""
    check_window(session_s)
    boot = _result(board.exec(_BOOT, timeout_s=BOOT_TIMEOUT_S), "boot")
    say("Bringing up Wi-Fi and timing the TLS handshakes ...")
    tls = _result(board.exec(_TLS, timeout_s=TLS_TIMEOUT_S), "TLS")
    say("Now walk past the sensor: the firmware runs for %g s while its heap is sampled "
        "every 100 ms." % session_s)
    try:
        output = board.exec(_SESSION.replace("WINDOW_MS", str(int(session_s * 1000))),
                            timeout_s=session_s + SESSION_GRACE_S)
    except BoardError as e:
        raise BoardError("the session did not end (did the firmware reset the board? It does "
                         "so at an idle moment to apply an update): %s" % e) from e
    session = _result(output, "session")
    mem_info = board.exec(_MEM_INFO)

    base = boot["base"]
    # What the session snippet itself added (its code, mostly) is taken off the high-water.
    snippet = max(0, session["start"] - boot["boot"])
    high = session["high"]
    figures: dict = {
        "heap_after_boot_kb": _kb(boot["boot"] - base),
        "heap_free_kb": _kb(boot["free"]),
        "session_high_water_kb": _kb(high - snippet - base) if high else None,
        "largest_block_kb": _kb(_largest_block(output) * session["block"]) or None,
    }
    skipped = {}
    if figures["session_high_water_kb"] is None:
        skipped["session_high_water_kb"] = "skipped: no heap sample was taken"
        skipped["largest_block_kb"] = "skipped: no heap sample was taken"
    for key, name in (("tls_handshake_spotify_ms", "spotify"), ("tls_handshake_aws_ms", "aws")):
        value = tls.get(name)
        if isinstance(value, int):
            figures[key] = round(value / 1000, 1)
        else:
            figures[key] = None
            skipped[key] = str(value)
    figures.update(
        skipped=skipped,
        board=boot["machine"],
        micropython=boot["version"].split("; ", 1)[-1],  # after the Python version
        spotify_at=tls.get("spotify_at"),
        aws_at=tls.get("aws_at"),
        session_s=session_s,
        session_error=session["error"],
        session_events=_session_events(output),
        mem_info=mem_info.strip("\n"),
    )
    return figures


def render(figures: dict) -> list[str]:
    events = figures["session_events"]
    seen = ", ".join("%s %d" % (name, events.get(name, 0)) for name in ("motion", "play", "pause"))
    lines = ["Board: %s; %s" % (figures["board"], figures["micropython"])]
    targets = [name + " " + at for name, at in
               (("Spotify", figures["spotify_at"]), ("AWS IoT", figures["aws_at"])) if at]
    if targets:
        lines.append("TLS to " + ", ".join(targets))
    lines.append("Session of %g s, firmware events: %s" % (figures["session_s"], seen))
    if figures["session_error"]:
        lines.append("The app stopped early: %s" % figures["session_error"])
    lines += format_lines(figures)
    lines += ["", "micropython.mem_info() after the session:", figures["mem_info"]]
    return lines


def report(board: Transport, session_s: float, json_path: Path, out: TextIO,
           err: TextIO) -> dict:
    def say(text: str) -> None:
        print(text, file=err, flush=True)

    figures = collect(board, session_s, say)
    print("\n".join(render(figures)), file=out)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(figures, indent=2) + "\n")
    say("Figures written to %s" % json_path)
    return figures
