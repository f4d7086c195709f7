"""`make bench`, the modelled ESP32: motion to music with the board's TLS handshakes.

On loopback a TLS handshake costs a few ms; an ESP32 spends about a second on one with
Spotify and 2-3 s on the mutual-TLS link to AWS IoT, and on the board that cost decides
what a visitor hears. Here the mock Spotify and the AWS IoT stand-in make each new TLS
handshake take that much longer (sim.ESP32_TLS_MS, sim.ESP32_MUTUAL_TLS_MS) while the
firmware runs as it does on a board: one TLS slot, the default 200 ms glitch filter. The
mock closes a connection idle for IDLE_CLOSE_S, so no call finds one kept from an earlier
one, as after the minutes of a session on a board.

Situations, each timed from the raw PIR edge to Spotify's answer to the play request
(the pause: from the moment the timeout is due to the answer to the pause request):
- idle: motion with the shadow link up and nothing else going on;
- reconnecting: motion while the link is in its TLS handshake, reconnecting after a
  session (checked for each visit against the stand-in's own record of handshakes);
- pausing: motion while the pause of the last session is under way;
- the pause after the timeout.
"""

import statistics
import tempfile
from pathlib import Path

from ..aws.iot_local import IotLocal
from ..sim import runner as sim
from ..sim.runtime import run_micropython
from ..spotify.mock import MockSpotify
from .sessions import percentile

VISITS = 6  # of each kind
STAY_S = 0.3  # a visit's PIR pulse
TIMEOUT_S = 2
BACK_AFTER_TIMEOUT_S = 0.3  # a visitor back this long after the pause came due
AFTER_RECONNECT_S = 0.4  # motion this long after the link began reconnecting
CYCLE_S = 16.0  # long enough for the link to be up again after any visit
FIRST_S = 6.0  # the link is up after the boot
IDLE_CLOSE_S = 0.5
CONFIG = {"spotify_device": "Bathroom", "timeout_s": TIMEOUT_S, "motion_gap_s": 0,
          "playlist_uri": "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M"}
GLITCH_MS = 200  # the firmware's default
GOAL_OVER_HANDSHAKE_MS = 150  # motion while idle, counted from the raw edge
GOAL_RECONNECTING_OVER_IDLE_MS = 300


# The firmware's own TLS client (MicroPython's mbedTLS, verifying the server) against the
# delayed mock: what a handshake costs in the model, the delay plus loopback's own.
_HANDSHAKE = """
import socket, ssl, sys, time
with open(sys.argv[1]) as f:
    host, port, ca = f.read().split()
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.verify_mode = ssl.CERT_REQUIRED
with open(ca, 'rb') as f:
    ctx.load_verify_locations(cadata=f.read())
for _ in range(3):
    s = socket.socket()
    s.connect(socket.getaddrinfo(host, int(port))[0][-1])
    started = time.ticks_ms()
    s = ctx.wrap_socket(s, server_hostname=host)
    print(time.ticks_diff(time.ticks_ms(), started))
    s.close()
"""


def handshake_ms() -> float:
    """The median of three Spotify handshakes in the model, as the firmware's TLS sees it."""
    with MockSpotify(tls_delay_ms=sim.ESP32_TLS_MS) as mock, \
            tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "ca.der").write_bytes(mock.ca.cert_der)
        (Path(tmp) / "args").write_text("%s %d %s" % (mock.host, mock.port,
                                                      Path(tmp) / "ca.der"))
        (Path(tmp) / "handshake.py").write_text(_HANDSHAKE)
        proc = run_micropython([str(Path(tmp) / "handshake.py"), str(Path(tmp) / "args")],
                               capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise SystemExit("modelled handshake failed:\n" + proc.stdout[-800:] + proc.stderr)
    return statistics.median(int(line) for line in proc.stdout.split())


def _run(edges: list[tuple[float, int]]):
    """(SimResult, the MQTT handshakes the stand-in saw) of one run through the edges."""
    scenario = sim.validate_scenario({
        "config": CONFIG, "events": [{"at": at, "pir": level} for at, level in edges],
        "until": edges[-1][0] + CYCLE_S})
    with IotLocal(tls_delay_ms=sim.ESP32_MUTUAL_TLS_MS) as iot, \
            MockSpotify(tls_delay_ms=sim.ESP32_TLS_MS, idle_timeout=IDLE_CLOSE_S) as mock, \
            tempfile.TemporaryDirectory() as keys:
        files = iot.issue_thing("bench-esp32", Path(keys))
        target = sim.IotTarget(iot.mqtt_host, iot.mqtt_port, "bench-esp32",
                               files.ca_der.read_bytes(), files.cert_der.read_bytes(),
                               files.key_der.read_bytes(), iot.endpoint_url)
        result = sim.run(scenario, sim.SpotifyTarget(mock.url, mock.ca.cert_der), iot=target)
        handshakes = iot.front.connections()
    if result.returncode != 0 or result.named("crash"):
        raise SystemExit("modelled ESP32 run failed:\n" + "\n".join(result.console[-20:]))
    return result, handshakes


def _plays_by_edge(result) -> dict[int, int]:
    """{raw edge (ms after ready): motion-to-play latency} of each play."""
    return {p["t"] - p["latency_ms"]: p["latency_ms"] for p in result.named("play")}


def _latency(plays: dict[int, int], at: float) -> int | None:
    for edge_ms, latency in plays.items():
        if abs(edge_ms - at * 1000) <= 25:
            return latency
    return None


def _verdict_lateness(result, edges_at) -> list[int]:
    """How late (ms) the glitch filter's verdict on each of these edges came: the control
    task confirms an arrival GLITCH_MS after its edge, at its next 20 ms tick. A handshake
    that held up the event loop would hold it up too."""
    motions = [e["t"] for e in result.named("motion")]
    late = []
    for at in edges_at:
        confirmed = [t for t in motions if t >= at * 1000]
        if confirmed:
            late.append(confirmed[0] - round(at * 1000) - GLITCH_MS)
    return late


def _visits_and_comebacks():
    """A plain visit and a visit whose visitor is back while its pause is under way, in
    turn: the plain visits give the idle and pause figures."""
    edges, idle, back = [], [], []
    for i in range(2 * VISITS):
        start = FIRST_S + i * CYCLE_S
        edges += [(start, 1), (start + STAY_S, 0)]
        idle.append(start)
        if i % 2:
            again = start + STAY_S + TIMEOUT_S + BACK_AFTER_TIMEOUT_S
            edges += [(again, 1), (again + STAY_S, 0)]
            back.append(again)
    return edges, idle, back


def measure(figures: dict) -> None:
    edges, idle_at, back_at = _visits_and_comebacks()
    result, handshakes = _run(edges)
    plays = _plays_by_edge(result)
    ready = result.ready_at
    idle_at = [at for at in idle_at if not any(h.pending_at(ready + at) for h in handshakes)]
    idle = [v for v in (_latency(plays, at) for at in idle_at) if v is not None]
    late = _verdict_lateness(result, idle_at + back_at)
    back = [v for v in (_latency(plays, at) for at in back_at) if v is not None]
    ends = [e["t"] for e in result.named("session_end")]
    pauses = [e["t"] for e in result.named("pause")]
    pause_ms, end_after_leave = [], []
    for at in idle_at[::2]:  # plain visits: nobody came back
        due = (at + STAY_S + TIMEOUT_S) * 1000
        pause_ms += [next(t for t in pauses if t >= due) - due]
        end_after_leave += [next(t for t in ends if t >= due) / 1000 - at - STAY_S]
    # Motion just after the link began reconnecting after a session, which it does when
    # the session ends (or when the firmware gives back its one TLS slot).
    offset = statistics.median(end_after_leave) + AFTER_RECONNECT_S
    edges, reconnect_at = [], []
    for i in range(VISITS):
        start = FIRST_S + i * CYCLE_S * 1.5
        again = start + STAY_S + offset
        edges += [(start, 1), (start + STAY_S, 0), (again, 1), (again + STAY_S, 0)]
        reconnect_at.append(again)
    result, handshakes = _run(edges)
    plays = _plays_by_edge(result)
    ready = result.ready_at
    reconnect_at = [at for at in reconnect_at if any(h.pending_at(ready + at) for h in handshakes)]
    reconnecting = [v for v in (_latency(plays, at) for at in reconnect_at) if v is not None]
    late += _verdict_lateness(result, reconnect_at)
    _record(figures, handshake_ms(), idle, reconnecting, back, pause_ms, late)


def _record(figures: dict, handshake, idle, reconnecting, back, pause_ms, late=()) -> None:
    figures["esp32_tls_handshake_ms"] = handshake
    print("\nModelled ESP32 (each new TLS handshake %d ms longer with Spotify, %d ms with AWS "
          "IoT; one TLS slot; 200 ms glitch filter):" % (sim.ESP32_TLS_MS,
                                                          sim.ESP32_MUTUAL_TLS_MS))
    print("  %-42s %6d ms   (%d ms added to loopback's own)" % (
        "a Spotify TLS handshake", handshake, sim.ESP32_TLS_MS))
    rows = (("idle", "motion while idle", idle),
            ("reconnecting", "motion while the link reconnects", reconnecting),
            ("pausing", "motion while the last pause is under way", back),
            ("pause", "the pause after the timeout", pause_ms))
    for key, label, values in rows:
        if not values:
            print("  %-42s no run got there" % label)
            continue
        median, p95 = statistics.median(values), percentile(values, 0.95)
        name = "esp32_pause_after_timeout" if key == "pause" else "esp32_motion_to_play_" + key
        figures[name + "_ms"] = median
        figures[name + "_p95_ms"] = p95
        print("  %-42s median %5d ms   p95 %5d ms   (n=%d)" % (label, median, p95, len(values)))
    if late:
        figures["esp32_loop_stall_max_ms"] = max(late)
        print("  %-42s %6d ms at most   (n=%d; a handshake that held up the event loop "
              "would add up to %d)" % ("the filter's verdict, later than its 200 ms",
                                      max(late), len(late), sim.ESP32_MUTUAL_TLS_MS))
    idle_median = figures.get("esp32_motion_to_play_idle_ms")
    again = figures.get("esp32_motion_to_play_reconnecting_ms")
    goals = []
    if idle_median is not None:
        goals.append(("motion while idle: at most the handshake + %d ms (%d)" % (
            GOAL_OVER_HANDSHAKE_MS, handshake + GOAL_OVER_HANDSHAKE_MS),
            idle_median <= handshake + GOAL_OVER_HANDSHAKE_MS))
    if idle_median is not None and again is not None:
        goals.append(("motion while the link reconnects: at most %d ms over idle (%d)" % (
            GOAL_RECONNECTING_OVER_IDLE_MS, idle_median + GOAL_RECONNECTING_OVER_IDLE_MS),
            again <= idle_median + GOAL_RECONNECTING_OVER_IDLE_MS))
    for text, met in goals:
        print("  goal, %s: %s" % (text, "met" if met else "NOT met"))
    figures["esp32_goals_met"] = all(met for _, met in goals) if goals else None


def main(figures: dict) -> None:
    measure(figures)
