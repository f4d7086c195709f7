"""`make bench`, sessions against the mock Spotify: figures from real runs of the firmware
on the unix-port MicroPython.

- motion-to-play latency (PIR edge to Spotify's answer to the play request), median and
  p95 over 20+ sessions, with a warm (kept-alive) and a cold (new TLS) connection;
- network round trips on the motion path and Spotify calls per session;
- the smallest `-X heapsize` with which a full session cycle still works: with the
  firmware run from source (compiled at import, which needs heap of its own), as .mpy
  from the flash (as a board runs it), and as .mpy with the shadow link on.
"""

import itertools
import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path

from ..sim import runner as sim
from ..spotify.mock import MockSpotify
from .workload import scenario

SESSIONS = 20
HEAP_RUNS = 2
def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def run_sessions(keepalive: bool):
    with MockSpotify(keepalive=keepalive) as mock:
        result = sim.run(scenario(SESSIONS), sim.SpotifyTarget(mock.url, mock.ca.cert_der))
        requests = mock.requests()
    plays = result.named("play")
    ends = result.named("session_end")
    if len(plays) != SESSIONS or len(ends) != SESSIONS:
        raise SystemExit("bench run incomplete: %d plays, %d ends\n%s" % (
            len(plays), len(ends), "\n".join(result.console[-20:])))
    return plays, requests


def latency_line(label, plays):
    values = [p["latency_ms"] for p in plays]
    return "  %-28s median %5d ms   p95 %5d ms   (n=%d, includes the %d ms glitch filter)" % (
        label, statistics.median(values), percentile(values, 0.95), len(values), 100)


# A cycle's phases, in order: "idle" is the shadow link up (boards with a link), "report"
# the session's statistics in the shadow.
PHASES = ("boot", "idle", "play", "pause", "report")


class HeapProbe:
    """Runs a session cycle (boot, play, timeout, pause) under a given -X heapsize.

    installed: the firmware compiled to .mpy in the flash; iot: with the shadow link
    (single TLS), which must also bring the session's statistics to the shadow.
    Near the limit, fragmentation makes a run succeed or fail by chance: a size
    works if HEAP_RUNS runs in a row do."""

    def __init__(self, installed: bool = False, iot: bool = False):
        self.installed = installed
        self.iot = iot
        self._names = itertools.count(1)
        self._stack = ExitStack()
        self._local = None

    def __enter__(self) -> "HeapProbe":
        if self.iot:
            from ..aws.iot_local import IotLocal

            self._local = self._stack.enter_context(IotLocal())
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def works(self, heapsize: str) -> bool:
        return all(self.reached(heapsize) == list(self.phases()) for _ in range(HEAP_RUNS))

    def phases(self) -> tuple:
        return PHASES if self.iot else ("boot", "play", "pause")

    def reached(self, heapsize: str) -> list[str]:
        """The phases of one cycle under this heap that completed, in order, up to the
        first that did not. What comes after a crash does not count, and the last phase
        counts only in a run that ended well."""
        result, reported = self._cycle(heapsize)
        events = [e["ev"] for e in result.events]
        crashed = "crash" in events
        if crashed:
            events = events[:events.index("crash")]
        done = {"boot": "ready" in events, "idle": "shadow_up" in events,
                "play": events.count("play") == 1,
                "pause": events.count("pause") == 1 and "session_end" in events,
                "report": (reported or {}).get("stats", {}).get("sessions") == 1}
        phases = self.phases()
        done[phases[-1]] = done[phases[-1]] and result.returncode == 0 and not crashed
        reached = []
        for phase in phases:
            if not done[phase]:
                break
            reached.append(phase)
        return reached

    def _cycle(self, heapsize: str):
        """(SimResult, the shadow's reported state or None) of one cycle."""
        with MockSpotify() as mock, tempfile.TemporaryDirectory() as keys:
            target = shadow = None
            if self._local:
                target, shadow = self._thing(Path(keys))
            result = sim.run(scenario(1, every=4.0 if self.iot else 3.0),
                             sim.SpotifyTarget(mock.url, mock.ca.cert_der), heapsize=heapsize,
                             install_firmware=self.installed, iot=target, max_reboots=0)
            reported = None
            if shadow is not None:
                reported = (shadow.get() or {}).get("state", {}).get("reported", {})
            return result, reported

    def _thing(self, keys: Path):
        from ..aws.shadow_client import ShadowClient

        local = self._local
        name = "heap-%d" % next(self._names)  # a new shadow each run: no stale statistics
        files = local.issue_thing(name, keys)
        target = sim.IotTarget(local.mqtt_host, local.mqtt_port, name,
                               files.ca_der.read_bytes(), files.cert_der.read_bytes(),
                               files.key_der.read_bytes(), local.endpoint_url)
        return target, ShadowClient(name, local.endpoint_url)


def min_heap_kb(probe, low=8, high=256, margins=(4, 8)):
    """Bisect the smallest heap (KB) with which boot, play, timeout and pause all work.

    Near the limit the outcome does not grow with the heap step by step (the layout,
    hence the fragmentation, changes with the size): a result counts only if the
    sizes `margins` KB above it work too; else the bisection goes on above them."""
    top = high
    if not probe.works("%dK" % top):
        raise SystemExit("a session cycle fails even with %d KB of heap" % top)
    good = {top}
    while True:
        while high - low > 1:
            mid = (low + high) // 2
            if probe.works("%dK" % mid):
                high = mid
                good.add(mid)
            else:
                low = mid
        failed = []
        for kb in (min(top, high + m) for m in margins):
            if kb in good or probe.works("%dK" % kb):
                good.add(kb)
            else:
                failed.append(kb)
        if not failed:
            return high
        low = max(failed)
        high = min(kb for kb in good if kb > low)


# (key, label, installed, with the shadow link); the ESP32 figures leave out the source
# run: a board runs .mpy, and compiling on the board is not how the firmware ships.
HEAP_CASES = (
    ("source", "firmware from source (compiled on import)", False, False),
    ("spotify", "firmware as .mpy in flash (as on a board)", True, False),
    ("cycle", ".mpy, with the shadow link (single TLS) and its report", True, True),
    ("ota", "an OTA cycle while idle, link on (download to reboot)", True, True),
)
ESP32_HEAP_BOUND_KB = 88  # the required bound: room for fragmentation in the 112 KB heap


def _probe(key: str, installed: bool, with_link: bool):
    if key == "ota":
        from .ota_cycle import OtaCycleProbe

        return OtaCycleProbe()
    return HeapProbe(installed, with_link)


def heap_figures(figures: dict, prefix: str, iot: bool, source: bool = True,
                 ota: bool = True) -> None:
    """figures[prefix + "heap_<case>_kb"]: the smallest heap of each case that can run."""
    for key, _, installed, with_link in HEAP_CASES:
        if (with_link and not iot) or (key == "source" and not source) or (
                key == "ota" and not ota):
            continue
        with _probe(key, installed, with_link) as probe:
            figures["%sheap_%s_kb" % (prefix, key)] = min_heap_kb(probe)


PHASE_STEP_KB = 4
PHASE_LABELS = {"boot": "boot", "idle": "idle, link up", "play": "play", "pause": "pause",
                "report": "shadow report"}


def phase_heaps_kb(probe: HeapProbe, low: int, high: int, step: int = PHASE_STEP_KB) -> dict:
    """{phase: the smallest heap (KB) from which the phase completes at every size tried
    up to high}, from one cycle at each size from low to high in steps."""
    sizes = list(range(low, high + 1, step))
    reached = {kb: set(probe.reached("%dK" % kb)) for kb in sizes}
    figures = {}
    for phase in probe.phases():
        enough = [kb for kb in sizes if all(phase in reached[k] for k in sizes if k >= kb)]
        figures[phase] = min(enough) if enough else None
    return figures


def phase_line(figures: dict, prefix: str) -> list[str]:
    cells = ["%s %s" % (label, figures.get("%sphase_%s_kb" % (prefix, phase), "-"))
             for phase, label in PHASE_LABELS.items()
             if "%sphase_%s_kb" % (prefix, phase) in figures]
    if not cells:
        return []
    ota = figures.get(prefix + "heap_ota_kb")
    return ["Heap each phase of the cycle needs (KB; the smallest -X heapsize that gets "
            "through it, %d KB steps):" % PHASE_STEP_KB,
            "  " + ", ".join(cells) + ("; a whole OTA cycle %s" % ota if ota else "")]


def heap_lines(figures: dict) -> list[str]:
    esp32 = any(key.startswith("esp32_heap_") for key in figures)
    lines = ["Smallest -X heapsize for boot + play + timeout + pause (with the link: and the "
             "session report on the shadow):",
             "  %-56s %14s%s" % ("", "wheel (64-bit)", "  as on an ESP32 (32-bit)" if esp32
                                 else "")]
    for key, label, _, _ in HEAP_CASES:
        wheel = figures.get("heap_%s_kb" % key)
        board = figures.get("esp32_heap_%s_kb" % key)
        if wheel is None and board is None:
            continue
        row = "  %-56s %11s KB" % (label, wheel if wheel is not None else "-")
        if esp32:
            row += "  %11s KB" % (board if board is not None else "-")
        if key in ("cycle", "ota") and board is not None:
            row += "   (required: at most %d KB)" % ESP32_HEAP_BOUND_KB
        lines.append(row)
    return lines


def main(figures: dict) -> None:
    print("SpottyPottySense benchmark (firmware on the unix-port MicroPython, mock Spotify "
          "over TLS on loopback)\n")
    warm, warm_requests = run_sessions(keepalive=True)
    cold, _ = run_sessions(keepalive=False)
    print("Motion-to-play latency (PIR edge -> answer to PUT /me/player/play), %d sessions:"
          % SESSIONS)
    print(latency_line("warm (connection kept alive)", warm[1:]))
    print(latency_line("cold (new TLS handshake)", cold))
    for name, plays in (("warm", warm[1:]), ("cold", cold)):
        values = [p["latency_ms"] for p in plays]
        figures["latency_%s_median_ms" % name] = statistics.median(values)
        figures["latency_%s_p95_ms" % name] = percentile(values, 0.95)
    api = [r for r in warm_requests if r["path"] != "/api/token"]
    figures["motion_path_requests"] = statistics.median(p["calls"] for p in warm)
    figures["tls_connects_warm"] = statistics.median(p["connects"] for p in warm[1:])
    figures["tls_connects_cold"] = statistics.median(p["connects"] for p in cold)
    figures["api_calls_per_session"] = len(api) / SESSIONS
    print("\nRound trips on the motion path: %d HTTP requests (GET player, PUT play); "
          "new TLS connections: %d warm, %d cold" % (
              figures["motion_path_requests"], figures["tls_connects_warm"],
              figures["tls_connects_cold"]))
    print("Spotify API calls per session: %.1f (play + pause, incl. ownership checks)"
          % figures["api_calls_per_session"])
