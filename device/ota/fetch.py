# An update's download, in a boot of its own. The app asks for it (state["fetch"],
# written by ota.state.ask_fetch, then a reset), and ota.boot runs this before the app is
# imported: the download, TLS and the verifier then share a heap that holds nothing
# else. Beside the app and the shadow link they would not fit a stock ESP32.
#
# The bundle streams over TLS, verified with the roots of the OTA trust list (certs.py),
# straight into ota.bundle.Stager (1 KB at a time, checked against the request's size
# and sha256 and the signing key), is read back and checked again, and the boot ends
# in a reset: into the swap (ota.apply) when a bundle is staged, else back into the
# app, which reports the outcome kept in state.json. The download stops as soon as
# someone walks in, so the app can play their music. One cut short by a Wi-Fi drop
# starts again from the beginning once Wi-Fi is back.
import asyncio
import random

from micropython import const

import certs
import log
import store
from core import backoff, otastate
from fsutil import remove_tree
from net import https, tls
from ota import state as ota_state
from pir import Pir

RETRY_BASE_MS = const(30000)
RETRY_CAP_MS = const(600000)
TIMEOUT_MS = const(20000)
WIFI_TRIES = const(3)  # downloads in one boot, each after Wi-Fi came back
# HTTP failures, as the reasons reported.ota gives
_HTTP_REASONS = {"too_large": "size_mismatch", "connect": "connect", "tls": "tls"}


class Postponed(Exception):
    pass


def run(board, state):
    """Download and stage state["fetch"], keep the outcome in state.json, reset."""
    job = state["fetch"]
    request = job["request"]
    # Should this boot end without an outcome (a power cut, no memory), the app
    # comes back and tries again after a wait, as after a network failure.
    ota_state.save(otastate.fetched(state, job, "interrupted", _wait_ms(job)))
    try:
        board.start_watchdog()
        board.ready()
        log.event("ota_fetch", version=request["version"], attempt=job["attempt"])
        reason = asyncio.run(_fetch(board, request))
        if reason is None:
            reason = _verify(request["version"], state)
        state = ota_state.save(otastate.fetched(state, job, reason, _wait_ms(job)))
        later = state.get("later")
        if reason is None:
            log.event("ota_staged", version=request["version"])
        elif later:
            log.event("ota_postponed" if reason == "postponed" else "ota_retry",
                      version=request["version"], reason=reason, wait_ms=later["wait_ms"])
        else:
            log.event("ota_refused", version=request["version"], reason=reason)
    finally:
        board.reset()


def _wait_ms(job):
    return backoff.delay_ms(job["attempt"] + 1, random.random(), RETRY_BASE_MS, RETRY_CAP_MS)


async def _fetch(board, request):
    """None once the bundle is staged, else the reason it is not."""
    pir = Pir(board, None)
    secrets, _ = store.load_json("secrets.json", {})
    try:
        with open(ota_state.PUBKEY, "rb") as f:
            pubkey = f.read()
    except OSError:
        return "no_public_key"
    ssid, password = secrets.get("wifi_ssid"), secrets.get("wifi_password")
    try:
        await board.connect_network(ssid, password)
        board.sync_clock()
    except OSError:
        return "network"
    base, target = _split(request["url"])
    client = https.Client(base, tls.context(certs.roots("ota")), timeout_ms=TIMEOUT_MS)
    tries = 0
    while True:
        reason = await _download(board, pir, client, target, pubkey, request)
        tries += 1
        # Wi-Fi lost on the way: the download starts again as soon as it is back, in
        # this boot, rather than after the wait and the two boots of a later attempt.
        if reason in (None, "postponed") or board.network_ok() or tries >= WIFI_TRIES:
            return reason
        log.event("ota_wifi_lost", version=request["version"], reason=reason, tries=tries)
        board.feed_watchdog()  # the failure may have taken a read timeout: the wait gets its own
        try:
            await board.connect_network(ssid, password)
        except OSError:
            return "network"


async def _download(board, pir, client, target, pubkey, request):
    from ota import bundle  # after the network is up: the heap is at its emptiest now

    stager = bundle.Stager(pubkey, ota_state.STAGED, request["size"], request["sha256"])
    checkpoint = getattr(board, "checkpoint", None)  # the simulator's power cuts

    def sink(buf, n):
        now = board.ticks_ms()
        board.service(now)
        board.feed_watchdog()
        if pir.read(now) or pir.presence.occupied:
            raise Postponed()
        stager.feed(memoryview(buf)[:n])
        if checkpoint:
            checkpoint("ota_fetch")

    staged = False
    try:
        response = await client.request("GET", target, None, None, sink, request["size"])
        if response.status != 200:
            return "http_%d" % response.status
        stager.finish()
        staged = True
        return None
    except bundle.OtaError as e:
        return e.reason
    except Postponed:
        return "postponed"
    except https.HttpError as e:
        if e.kind == "closed" and e.detail == "body cut short":
            return "truncated"
        return _HTTP_REASONS.get(e.kind, e.kind)
    finally:
        if not staged:
            stager.abort()  # nothing half-downloaded stays on flash
        client.close()


def _verify(version, state):
    """Read the staged bundle back from flash and check it again, and its counter
    against the highest applied (no downgrade); a reason or None."""
    from ota import bundle

    try:
        with open(ota_state.PUBKEY, "rb") as f:
            manifest = bundle.verify_staged(f.read(), ota_state.STAGED)
        bad = otastate.refused_path([e["path"] for e in manifest["files"]])
        if bad:
            raise bundle.OtaError("bad_path", bad)
        if manifest["version"] != version:
            raise bundle.OtaError("version_mismatch", manifest["version"])
        stale = otastate.stale(state, manifest)
        if stale:
            raise bundle.OtaError(stale)
        return None
    except (OSError, bundle.OtaError) as e:
        remove_tree(ota_state.STAGED)
        return getattr(e, "reason", "io")


def _split(url):
    """("https://host:port", "/path?query") of a checked https URL."""
    rest = url[8:]
    slash = rest.find("/")
    if slash < 0:
        return url, "/"
    return "https://" + rest[:slash], rest[slash:]
