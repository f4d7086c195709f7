# Firmware updates while the app runs: desired.ota in, a verified bundle in
# ota/staged out (ota.boot swaps it in at the next boot), reported.ota all along:
#   downloading -> verifying -> staged -> (reboot) applied | rolled_back, or refused.
#
# The download streams over verified TLS straight into ota.bundle.Stager (1 KB at
# a time, checked against the request's size and sha256 and the signing key), and
# stops as soon as someone walks in: it is tried again once the room is quiet.
import random

from micropython import const

import log
from core import backoff, otastate
from core import otadesired as od
from core.ticks import ticks_add, ticks_diff
from fsutil import remove_tree
from net import https
from ota import state as ota_state

MAX_ATTEMPTS = const(3)  # downloads of one request that failed for a network reason
RETRY_BASE_MS = const(30000)
RETRY_CAP_MS = const(600000)
POSTPONE_MS = const(60000)  # after a download gave way to music
TIMEOUT_MS = const(20000)
# HTTP failures, as the reasons reported.ota gives
_HTTP_REASONS = {"too_large": "size_mismatch", "connect": "connect", "tls": "tls"}


class Postponed(Exception):
    pass


class Updater:
    def __init__(self, running, state, changed, flush):
        """changed(clear_desired) marks reported.ota due (and deletes desired.ota);
        await flush() returns once it has gone out (or gave up)."""
        self.running = running
        self.state = state  # ota/state.json
        self.report = state.get("report")
        self.job = None  # (request, key) to run when the session is idle
        self.staged_key = None  # a verified bundle waits for the next boot
        self.attempts = 0
        self.retry_at = None
        self._changed = changed
        self._flush = flush

    # -- the shadow ---------------------------------------------------------

    def answer(self, desired):
        """desired.ota (any JSON) -> shadow update state, or None."""
        busy = self.job[1] if self.job else self.staged_key
        action, detail = od.decide(desired, self.running, self.state.get("done"), busy)
        if action == od.RUN:
            self.job = detail
            self.attempts = 0
            self.retry_at = None
            log.event("ota_wanted", version=detail[0]["version"])
        elif action == od.REFUSE:
            version, reason = detail
            self._refused(version, reason, None)
            return {"desired": {"ota": None}}
        elif action == od.CLEAR:
            return {"desired": {"ota": None}}
        return None

    def section(self):
        return self.report

    def idle(self):
        """Nothing to download or to apply: the app may drop the updater."""
        return self.job is None and self.staged_key is None

    # -- the worker ---------------------------------------------------------

    def due(self, now_ms):
        return self.job is not None and (
            self.retry_at is None or ticks_diff(now_ms, self.retry_at) >= 0)

    async def run(self, ctx, take_tls, give_tls, busy, now_ms):
        """Download, stage and verify the pending request; busy() -> True stops it."""
        request, key = self.job
        version = request["version"]
        await self._set(od.report(version, "downloading", previous=self.running))
        await take_tls()
        try:
            reason = await self._download(request, ctx, busy)
        finally:
            give_tls()
        if reason is None:
            await self._set(od.report(version, "verifying", previous=self.running))
            reason = _verify(version)
        if reason is None:
            self.state = ota_state.save(
                otastate.staged(self.state, self.running, version, key))
            self._done_with(key)
            self.staged_key = key
            log.event("ota_staged", version=version)
            await self._set(self.state["report"])
        elif reason == "postponed":
            log.event("ota_postponed", version=version)
            self.retry_at = ticks_add(now_ms, POSTPONE_MS)
        elif od.is_transient(reason) and self.attempts + 1 < MAX_ATTEMPTS:
            self.attempts += 1
            wait = backoff.delay_ms(self.attempts, random.random(), RETRY_BASE_MS, RETRY_CAP_MS)
            self.retry_at = ticks_add(now_ms, wait)
            log.event("ota_retry", version=version, reason=reason, wait_ms=wait)
            report = od.report(version, "refused", reason, self.running)
            report["retry"] = self.attempts
            await self._set(report)
        else:
            self._done_with(key)
            self._refused(version, reason, key)
            await self._flush()

    async def _download(self, request, ctx, busy):
        from ota import bundle  # the verifier's memory is needed only now

        try:
            with open(ota_state.PUBKEY, "rb") as f:
                pubkey = f.read()
        except OSError:
            return "no_public_key"
        base, target = _split(request["url"])
        client = https.Client(base, ctx, timeout_ms=TIMEOUT_MS)
        stager = bundle.Stager(pubkey, ota_state.STAGED, request["size"], request["sha256"])

        def sink(buf, n):
            if busy():
                raise Postponed()
            stager.feed(memoryview(buf)[:n])

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

    def _done_with(self, key):
        if self.job is not None and self.job[1] == key:
            self.job = None  # unless a newer request came in meanwhile

    # -- reporting ----------------------------------------------------------

    async def _set(self, report):
        self.report = report
        self._changed(False)
        await self._flush()

    def _refused(self, version, reason, key):
        log.event("ota_refused", version=version, reason=reason)
        refused = otastate.refused(self.state, version, reason, key, self.running)
        self.state = ota_state.save(refused)
        self.report = self.state["report"]
        self._changed(True)


def _verify(version):
    """Read the staged bundle back from flash and check it again; a reason or None."""
    from ota import bundle

    try:
        with open(ota_state.PUBKEY, "rb") as f:
            manifest = bundle.verify_staged(f.read(), ota_state.STAGED)
        bad = otastate.refused_path([e["path"] for e in manifest["files"]])
        if bad:
            raise bundle.OtaError("bad_path", bad)
        if manifest["version"] != version:
            raise bundle.OtaError("version_mismatch", manifest["version"])
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
