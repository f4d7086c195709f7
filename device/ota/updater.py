# Firmware updates, the app's side: desired.ota in, reported.ota out, and the reset
# into a boot of its own (ota.fetch) that downloads, verifies and stages the bundle
# while nothing else takes heap. ota.boot swaps a staged bundle in at the boot after:
#   downloading -> (reboot) applied | rolled_back, or refused (tried again later
#   when the network failed, with "retry": n).
# Nothing here stays loaded: the app calls answer() when desired.ota changes and
# drops this module (and core.otastate, core.otadesired) after each. What it keeps is
# a job, plain data, since an object of a class from here would keep this whole module
# alive (a function holds its module's globals); at an idle moment it reports the job's
# `downloading` and hands its `fetch` to ota.state.ask_fetch, then resets.
import log
from core import otadesired as od
from ota import state as ota_state


def answer(desired, running, job):
    """desired.ota (any JSON), the running version and the job under way (or None) ->
    (shadow update state or None, the job now, the new reported.ota or None when it
    stays as it is). A job is the download to ask for at the next idle moment:
    {fetch: {request, key, running, attempt} for ota.fetch, wait_ms: how long to wait
    first, downloading: the reported.ota that announces it}."""
    state = ota_state.load()
    busy = job["fetch"]["key"] if job else None
    action, detail = od.decide(desired, running, state.get("done"), busy)
    if action == od.RUN:
        request, key = detail
        attempt, wait_ms = od.later(state, key)
        log.event("ota_wanted", version=request["version"], attempt=attempt)
        downloading = od.report(request["version"], "downloading", previous=running)
        fetch = {"request": request, "key": key, "running": running, "attempt": attempt}
        return None, {"fetch": fetch, "wait_ms": wait_ms, "downloading": downloading}, None
    if action == od.REFUSE:  # the request it replaced is no longer wanted either
        version, reason = detail
        log.event("ota_refused", version=version, reason=reason)
        from core import otastate  # only here: the answer to a good request stays smaller

        state = ota_state.save(otastate.refused(state, version, reason, None, running))
        return {"desired": {"ota": None}}, None, state["report"]
    if action == od.CLEAR:
        return {"desired": {"ota": None}}, None, None
    return None, job, None
