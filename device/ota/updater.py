# Firmware updates, the app's side: desired.ota in, reported.ota out, and the reset
# into a boot of its own (ota.fetch) that downloads, verifies and stages the bundle
# while nothing else takes heap. ota.boot swaps a staged bundle in at the boot after:
#   downloading -> (reboot) applied | rolled_back, or refused (tried again later
#   when the network failed, with "retry": n).
import log
from core import otadesired as od
from core import otastate
from core.ticks import ticks_add, ticks_diff
from ota import state as ota_state


class Updater:
    def __init__(self, running, state, changed, flush):
        """changed(clear_desired) marks reported.ota due (and deletes desired.ota);
        await flush() returns once it has gone out (or gave up)."""
        self.running = running
        self.state = state  # ota/state.json
        self.report = state.get("report")
        self.job = None  # (request, key) to download when the session is idle
        self.attempt = 0
        self.wait_ms = 0
        self.retry_at = None
        self._changed = changed
        self._flush = flush

    # -- the shadow ---------------------------------------------------------

    def answer(self, desired):
        """desired.ota (any JSON) -> shadow update state, or None."""
        busy = self.job[1] if self.job else None
        action, detail = od.decide(desired, self.running, self.state.get("done"), busy)
        if action == od.RUN:
            self.job = detail
            self.attempt, self.wait_ms = otastate.later(self.state, detail[1])
            self.retry_at = None
            log.event("ota_wanted", version=detail[0]["version"], attempt=self.attempt)
        elif action == od.REFUSE:
            self.job = None  # the request it replaced is no longer wanted either
            version, reason = detail
            self._refused(version, reason)
            return {"desired": {"ota": None}}
        elif action == od.CLEAR:
            self.job = None
            return {"desired": {"ota": None}}
        return None

    def section(self):
        return self.report

    def idle(self):
        """Nothing to download: the app may drop the updater."""
        return self.job is None

    # -- the worker ---------------------------------------------------------

    def due(self, now_ms):
        if self.job is None:
            return False
        if self.retry_at is None:
            self.retry_at = ticks_add(now_ms, self.wait_ms)
        return ticks_diff(now_ms, self.retry_at) >= 0

    async def prepare(self):
        """Report the download and ask for it at the next boot: the caller resets."""
        request, key = self.job
        self.report = od.report(request["version"], "downloading", previous=self.running)
        self._changed(False)
        await self._flush()
        ota_state.save(otastate.fetch(self.state, request, key, self.running, self.attempt))

    def _refused(self, version, reason):
        log.event("ota_refused", version=version, reason=reason)
        self.state = ota_state.save(otastate.refused(self.state, version, reason, None,
                                                     self.running))
        self.report = self.state["report"]
        self._changed(True)
