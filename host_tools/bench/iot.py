"""`make bench`, the shadow link: MQTT traffic per session and per month, shadow
operations per day, the AWS IoT bill per device-month, and motion-to-play latency
with the link on (single-TLS and PSRAM boards).

Counts come from the firmware's own counters (session_end events), measured on
real runs against mosquitto and the local shadow service.
"""

import math
import statistics
import tempfile
from pathlib import Path

from ..aws.iot_local import IotLocal
from ..sim import runner as sim
from ..spotify.mock import MockSpotify
from .workload import scenario  # the same visits as the Spotify figures

SESSIONS = 8
VISITS_PER_DAY = 30  # the reference load
DAYS_PER_MONTH = 30
HEARTBEATS_PER_DAY = 4  # app._HEARTBEAT_S is 6 h
# AWS IoT Core list prices, us-east-1 (aws.amazon.com/iot-core/pricing, checked 2026-11).
PRICE_CONNECT_MINUTE = 0.08 / 1e6
# Per message of up to 5 KB: CONNECT, SUBSCRIBE, PUBLISH both ways, and a PUBACK the
# device sends (metered as a whole 5 KB message); PINGREQ, SUBACK, DISCONNECT are free.
PRICE_MESSAGE = 1.00 / 1e6
PRICE_SHADOW_OP = 1.25 / 1e6  # per shadow get/update of up to 1 KB
COST_GOAL_USD = 0.0100  # per device-month with one TLS slot, at the reference load


def _run(settings: dict, every_s: float):
    with IotLocal() as iot, MockSpotify() as mock, tempfile.TemporaryDirectory() as keys:
        files = iot.issue_thing("bench-bath", Path(keys))
        target = sim.IotTarget(iot.mqtt_host, iot.mqtt_port, "bench-bath",
                               files.ca_der.read_bytes(), files.cert_der.read_bytes(),
                               files.key_der.read_bytes(), iot.endpoint_url)
        result = sim.run(scenario(SESSIONS, every=every_s),
                         sim.SpotifyTarget(mock.url, mock.ca.cert_der), iot=target,
                         settings=settings)
    ends = result.named("session_end")
    if len(ends) != SESSIONS:
        raise SystemExit("shadow bench incomplete: %d sessions\n%s" % (
            len(ends), "\n".join(result.console[-20:])))
    return result.named("play"), ends


# The firmware's cumulative counters in session_end, and whether AWS meters each one.
COUNTERS = {
    "mqtt_sent": True,  # PUBLISH from the device (shadow get and update)
    "mqtt_received": True,  # PUBLISH to the device
    "mqtt_connects": True,
    "mqtt_subscribes": True,  # SUBSCRIBE packets, however many topics each carries
    "mqtt_pubacks": True,  # PUBACKs sent by the device
    "mqtt_bytes_out": False,
    "mqtt_bytes_in": False,
}


def per_session(ends: list[dict]) -> dict:
    """Median per session of each counter, from consecutive session_end events."""
    return {key: statistics.median(b[key] - a[key] for a, b in zip(ends, ends[1:], strict=False))
            for key in COUNTERS}


def metered_messages(traffic: dict) -> int:
    return sum(traffic[key] for key, metered in COUNTERS.items() if metered)


def main(figures: dict) -> None:
    print("\nShadow link (AWS IoT stand-in: mosquitto + shadow service, mutual TLS), "
          "%d sessions:" % SESSIONS)
    for name, label, settings in (
            ("single_tls", "single TLS (no PSRAM, default)", {"single_tls": True}),
            ("psram", "PSRAM (single_tls: false)", {"single_tls": False})):
        plays, ends = _run(settings, every_s=4.0)
        latencies = [p["latency_ms"] for p in plays[1:]]
        traffic = per_session(ends)
        sent, out = traffic["mqtt_sent"], traffic["mqtt_bytes_out"]
        metered = metered_messages(traffic)
        print("  %s" % label)
        print("    motion-to-play median %d ms, p95 %d ms (new Spotify TLS connection: %d)" % (
            statistics.median(latencies), max(latencies),
            statistics.median(p["connects"] for p in plays[1:])))
        print("    per session: %d publishes out (%d B), %d in (%d B), %d connects, "
              "%d subscribes, %d device PUBACKs -> %d metered messages" % (
                  sent, out, traffic["mqtt_received"], traffic["mqtt_bytes_in"],
                  traffic["mqtt_connects"], traffic["mqtt_subscribes"], traffic["mqtt_pubacks"],
                  metered))
        monthly = DAYS_PER_MONTH * (VISITS_PER_DAY * metered + 2 * HEARTBEATS_PER_DAY)
        # Every get and update the device publishes is a shadow operation, per started KB.
        shadow_ops_day = VISITS_PER_DAY * max(sent, math.ceil(out / 1024)) + HEARTBEATS_PER_DAY
        cost = (monthly * PRICE_MESSAGE + shadow_ops_day * DAYS_PER_MONTH * PRICE_SHADOW_OP
                + DAYS_PER_MONTH * 24 * 60 * PRICE_CONNECT_MINUTE)
        figures.update({
            "iot_%s_latency_median_ms" % name: statistics.median(latencies),
            "iot_%s_metered_messages_per_session" % name: metered,
            "iot_%s_messages_per_month" % name: monthly,
            "iot_%s_shadow_ops_per_day" % name: shadow_ops_day,
            "iot_%s_cost_usd_per_month" % name: round(cost, 4),
        })
        if name == "single_tls":  # the figure that counts: boards without PSRAM
            figures["aws_cost_per_device_month_usd"] = round(cost, 4)
        print("    reference load (%d visits/day): %d metered messages/month, about %d shadow "
              "operations/day, AWS IoT cost $%.4f per device-month" % (
                  VISITS_PER_DAY, monthly, shadow_ops_day, cost))
    print("  prices used: $0.08 per million connection-minutes, $1.00 per million messages, "
          "$1.25 per million shadow operations (us-east-1 list prices)")
    cost = figures["aws_cost_per_device_month_usd"]
    print("  goal, AWS IoT cost with one TLS slot: at most $%.4f per device-month: %s" % (
        COST_GOAL_USD, "met" if cost <= COST_GOAL_USD else "NOT met"))
