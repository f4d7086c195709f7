# The life of a firmware version, as kept in ota/state.json, without the I/O:
#
#   {"version": "0.2.0",       running, as far as updates know
#    "previous": "0.1.0",      what ota/previous holds; None when it holds nothing
#    "trial": true, "boots": 1, a new version until it proves healthy
#    "crashes": 0,             crashes since the last quiet spell, across resets
#    "pending": {"version", "key"},   staged, not yet applied
#    "fetch": {"request", "key", "attempt", "running"},  a download for the next boot
#    "later": {"key", "attempt", "wait_ms"},   a download to try again after a wait
#    "done": "<job key>",      the last request finished for good: never tried again
#    "counter": 1796256000, "counter_v": "0.2.0",  the highest bundle counter applied,
#                              and the version that brought it (see stale)
#    "report": {...}}          reported.ota, kept across reboots
#
# Each function returns a new dict (or None when nothing changes), so the caller
# writes state.json only when something did.
from micropython import const

from core.otadesired import is_transient, report

MAX_ATTEMPTS = const(3)  # downloads of one request that failed for a network reason
POSTPONE_MS = const(60000)  # after a download gave way to music
TRIAL_BOOTS = const(3)  # boots a new version gets to become healthy
SAFE_CRASHES = const(10)  # two boots' worth of crash loops (app.MAX_CRASHES each)

ROLLBACK = "rollback"
TRIAL = "trial"
SAFE = "safe"
NORMAL = "normal"


def on_boot(state):
    """(mode, state to save or None). A version on trial is rolled back after
    TRIAL_BOOTS boots that did not reach healthy; it never boots in safe mode (its
    crashes count towards the rollback instead)."""
    if state.get("trial"):
        boots = _count(state, "boots") + 1
        if boots > TRIAL_BOOTS:
            return ROLLBACK, None  # ota.boot keeps the trial if nothing is there to go back to
        return TRIAL, _with(state, boots=boots)
    if _count(state, "crashes") >= SAFE_CRASHES:
        return SAFE, None
    return NORMAL, None


def staged(state, running, version, key):
    """A verified bundle waits in ota/staged for the next boot."""
    return _with(state, version=running, pending={"version": version, "key": key},
                 report=report(version, "staged", previous=running))


def fetched(state, job, reason, wait_ms):
    """After the download of job (state["fetch"]): staged when reason is None, else to
    be tried again after wait_ms (a network failure, or someone walked in), else
    refused for good."""
    request, key, running, attempt = job["request"], job["key"], job["running"], job["attempt"]
    version = request["version"]
    state = _with(state, fetch=None, later=None)
    if reason is None:
        return staged(state, running, version, key)
    if reason == "postponed":
        return _with(state, later={"key": key, "attempt": attempt, "wait_ms": POSTPONE_MS})
    if is_transient(reason) and attempt + 1 < MAX_ATTEMPTS:
        retry = report(version, "refused", reason, running)
        retry["retry"] = attempt + 1
        return _with(state, report=retry,
                     later={"key": key, "attempt": attempt + 1, "wait_ms": wait_ms})
    return refused(state, version, reason, key, running)


def stale(state, manifest):
    """Why a signed bundle may not be applied ("no_counter", "downgrade"), or None. Its
    counter must be above the highest applied so far, or equal to it for the very
    version that brought it: an old bundle, though signed, cannot roll a board back.
    The rollback of a failed trial restores ota/previous and never comes here."""
    counter = manifest.get("counter")
    if counter is None:
        return "no_counter"  # built before the rule: as old as bundles get
    top = state.get("counter")
    if type(top) is int and (counter < top or counter == top
                             and manifest.get("version") != state.get("counter_v")):
        return "downgrade"
    return None


def applied(state, version, previous, key, counter=None):
    """The staged files are in place: the new version is on trial. (Explicit values,
    not read from state, so that committing twice after a power cut gives the same.)
    A rollback later keeps the counter: only a newer bundle goes past it."""
    new = _with(state, version=version, previous=previous, trial=True, boots=0, crashes=0,
                pending=None, done=key, report=report(version, "applied", previous=previous))
    if type(counter) is int and counter >= _count(state, "counter"):
        new["counter"] = counter
        new["counter_v"] = version
    return new


def refused(state, version, reason, key=None, running=None):
    """A request refused for good (key: never try it again); the staged bundle, if
    it was one, is gone."""
    return _with(state, pending=None, done=key or state.get("done"),
                 report=report(version, "refused", reason, running or state.get("version")))


def refused_at_boot(state, reason):
    pending = state.get("pending") or {}
    return refused(state, pending.get("version"), reason, pending.get("key"))


def rolled_back(state, failed, restored, reason):
    return _with(state, version=restored, previous=None, trial=False, boots=0, crashes=0,
                 pending=None, report=report(failed, "rolled_back", reason, restored))


def healthy(state):
    if not state.get("trial"):
        return None
    return _with(state, trial=False, boots=0)


def crashed(state):
    return _with(state, crashes=_count(state, "crashes") + 1)


def calm(state):
    """A quiet spell without crashes: forget the old ones."""
    return _with(state, crashes=0) if _count(state, "crashes") else None


def refused_path(paths):
    """The first path an update may not replace, or None. Updates bring firmware
    modules and CA roots in their trust lists (ca/spotify|iot|ota/*.der, see certs.py),
    never the owner's files (secrets, token, config)."""
    for path in paths:
        code = path.endswith(".py") or path.endswith(".mpy")
        parts = path.split("/")
        root = len(parts) == 3 and parts[0] == "ca" and parts[1] in ("spotify", "iot", "ota")
        if not (code or root and path.endswith(".der")):
            return path
        if path.startswith("ota/staged/") or path.startswith("ota/previous/"):
            return path
    return None


def _count(state, name):
    value = state.get(name)
    return value if type(value) is int and value > 0 else 0


def _with(state, **changes):
    new = dict(state)
    for name, value in changes.items():
        if value is None:
            new.pop(name, None)
        else:
            new[name] = value
    return new
