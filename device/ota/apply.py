# The swap machinery, run by ota/boot.py at a boot that has work for it: finishes or
# undoes an interrupted swap, applies a staged update, rolls back a version that
# failed its trial, and tells the app whether to start in safe mode.
#
# A swap is journalled in ota/journal.json, written atomically before each phase.
# Every phase can be run again from its start, so after a power cut anywhere the
# next boot resumes the journal and ends with the old or the new firmware. Files
# are only ever replaced by an atomic rename, never removed first, so even in
# the middle of a phase every module main.py needs is there, in one version or
# the other:
#
#   apply     clear    empty ota/previous
#             backup   copy into ota/previous the files the new version replaces
#             install  rename each staged file over its place
#             retire   move into ota/previous what must go: .py/.mpy twins of new
#                      modules (a .py beats a .mpy), modules of the old version the
#                      new one lacks, and old CA roots if the bundle brings its own
#             commit   ota/installed.json and state.json name the new version, on trial
#   rollback  restore  rename everything in ota/previous back over its place
#             prune    remove the files the failed version brought
#             commit   state.json names the old version again
#
# Only os, log, store, core.otastate, fsutil and ota.state are used: after a cut, this
# module may be the old or the new one. fsutil.mpy sorts before ota/apply.mpy, so an
# update installs it first and an apply.mpy resuming the swap always finds it.
import os

import log
import store
from core import otastate
from fsutil import is_dir, make_dirs, remove_tree, stat_mode
from ota.state import JOURNAL, PUBKEY, STAGED, load, save, update

PREVIOUS = "ota/previous"
INSTALLED = "ota/installed.json"
DEPLOYED = "deploy-manifest.json"  # what a deploy over USB copied (host_tools/board/deploy.py)
NEVER_SWAPPED = ("main.py", "boot.py")
MAX_TRIES = 3  # resumptions of one journal; an apply that keeps failing is rolled back
_COPY_CHUNK = 1024


def run(board):
    """Boot: returns {"mode": normal|trial|safe, "version": ...}, or resets the board.
    ota.boot may have found no work (its own check); this one does it all again."""
    hook = getattr(board, "checkpoint", None) or _no_hook
    state = load()
    journal, problem = store.load_json(JOURNAL, None)
    if journal is not None or problem not in (None, "missing"):
        _resume(journal, state, hook)
        board.reset()
    if _exists(STAGED + "/manifest.json"):
        if _apply_staged(state, hook):
            board.reset()
        state = load()
    elif _exists(STAGED):
        remove_tree(STAGED)  # a download cut short: no manifest.json, never applied
    mode, changed = otastate.on_boot(state)
    if mode == otastate.ROLLBACK:
        if _start_rollback(state, "not healthy after %d boots" % otastate.TRIAL_BOOTS, hook):
            board.reset()
        mode = otastate.TRIAL
    if changed is not None:
        state = save(changed)
    log.event("boot", mode=mode, version=state.get("version"), boots=state.get("boots"),
              crashes=state.get("crashes"))
    return {"mode": mode, "version": state.get("version")}


# -- apply ------------------------------------------------------------------

def _apply_staged(state, hook):
    """Verify ota/staged again and swap it in; False if it was refused."""
    from ota import bundle  # only now: verifying costs memory a normal boot need not pay

    try:
        with open(PUBKEY, "rb") as f:
            pubkey = f.read()
        manifest = bundle.verify_staged(pubkey, STAGED)
        paths = [e["path"] for e in manifest["files"] if e["path"] not in NEVER_SWAPPED]
        bad = otastate.refused_path(paths)
        if bad:
            raise bundle.OtaError("bad_path", bad)
        stale = otastate.stale(state, manifest)
        if stale:
            raise bundle.OtaError(stale)
    except (OSError, bundle.OtaError) as e:
        reason = getattr(e, "reason", "no_public_key")
        log.event("ota_refused", reason=reason, detail=getattr(e, "detail", ""))
        remove_tree(STAGED)
        update("refused_at_boot", reason)
        return False
    pending = state.get("pending") or {}
    hook("apply:verified")
    replaced, retired = _plan(paths)
    journal = {"op": "apply", "phase": "clear", "tries": 0, "version": manifest["version"],
               "counter": manifest.get("counter"), "from": state.get("version"),
               "key": pending.get("key"),
               "files": paths, "replaced": replaced, "retired": retired}
    log.event("ota_apply", version=manifest["version"], files=len(paths))
    _apply(journal, hook)
    return True


def _plan(paths):
    """(files the new version replaces, files to move out of its way)."""
    new = set(paths)
    retired = set()
    for path in paths:
        retired.add(_twin(path))
    for path in _installed():
        if _is_code(path):  # ca/ changes only with a bundle that brings roots
            retired.add(path)
            retired.add(_twin(path))
    if any(p.startswith("ca/") for p in paths):
        for name in _walk("ca"):
            retired.add("ca/" + name)
    replaced = [p for p in paths if _is_file(p)]
    return replaced, sorted(p for p in retired
                            if p not in new and p not in NEVER_SWAPPED and _is_file(p))


def _installed():
    listed, _ = store.load_json(INSTALLED, None)
    if isinstance(listed, list):
        return [p for p in listed if isinstance(p, str)]
    deployed, _ = store.load_json(DEPLOYED, None)
    files = deployed.get("files") if isinstance(deployed, dict) else None
    return [p for p in files if isinstance(p, str)] if isinstance(files, dict) else []


def _apply(journal, hook):
    phase = journal["phase"]
    if phase == "clear":
        _enter(journal, "clear", hook)
        remove_tree(PREVIOUS)
        phase = "backup"
    if phase == "backup":
        _enter(journal, "backup", hook)
        _each(journal, "replaced", lambda path: _copy(path, PREVIOUS + "/" + path), hook)
        phase = "install"
    if phase == "install":
        _enter(journal, "install", hook)
        _each(journal, "files", lambda path: _move(STAGED + "/" + path, path), hook)
        phase = "retire"
    if phase == "retire":
        _enter(journal, "retire", hook)
        _each(journal, "retired", lambda path: _move(path, PREVIOUS + "/" + path), hook)
    _enter(journal, "commit", hook)
    store.save_json(INSTALLED, journal["files"])
    update("applied", journal["version"], journal["from"], journal["key"],
           journal.get("counter"))
    remove_tree(STAGED)
    _remove(JOURNAL)
    log.event("ota_applied", version=journal["version"])


# -- rollback ---------------------------------------------------------------

def _start_rollback(state, reason, hook):
    """Put ota/previous back; False if it holds nothing to go back to."""
    restored = _walk(PREVIOUS)
    if not restored:
        log.event("error", error="rollback_impossible", detail="ota/previous is empty")
        return False
    _rollback({"op": "rollback", "phase": "restore", "tries": 0, "reason": reason,
               "failed": state.get("version"), "to": state.get("previous"),
               "restored": restored, "prune": _prune_list(_installed(), restored)}, hook)
    return True


def _prune_list(new_files, restored):
    keep = set(restored)
    return [p for p in new_files if p not in keep and p not in NEVER_SWAPPED]


def _rollback(journal, hook):
    phase = journal["phase"]
    if phase == "restore":
        _enter(journal, "restore", hook)
        _each(journal, "restored", lambda path: _move(PREVIOUS + "/" + path, path), hook)
        phase = "prune"
    if phase == "prune":
        _enter(journal, "prune", hook)
        _each(journal, "prune", _remove, hook)
    _enter(journal, "commit", hook)
    store.save_json(INSTALLED, journal["restored"])
    update("rolled_back", journal["failed"], journal["to"], journal["reason"])
    remove_tree(PREVIOUS)
    remove_tree(STAGED)
    _remove(JOURNAL)
    log.event("ota_rolled_back", version=journal["failed"], to=journal["to"],
              reason=journal["reason"])


# -- resuming after a cut ---------------------------------------------------

def _resume(journal, state, hook):
    if not isinstance(journal, dict) or journal.get("op") not in ("apply", "rollback"):
        # Unreadable (a flash fault, as writes are atomic): put back whatever was saved.
        log.event("error", error="ota_journal", detail="unreadable")
        restored = _walk(PREVIOUS)
        if not restored:
            _remove(JOURNAL)
            return
        journal = {"op": "rollback", "phase": "restore", "tries": 0, "reason": "journal",
                   "failed": state.get("version"), "to": state.get("previous"),
                   "restored": restored, "prune": []}
    journal["tries"] = journal.get("tries", 0) + 1
    log.event("ota_resume", op=journal["op"], phase=journal.get("phase"), tries=journal["tries"])
    if journal["op"] == "apply":
        if journal["tries"] <= MAX_TRIES:
            _apply(journal, hook)
            return
        # The apply keeps failing (flash full or faulty): undo what it did.
        restored = _walk(PREVIOUS)
        journal = {"op": "rollback", "phase": "restore", "tries": 0, "reason": "apply_failed",
                   "failed": journal["version"], "to": journal["from"],
                   "restored": restored, "prune": _prune_list(journal["files"], restored)}
    elif journal["tries"] > MAX_TRIES:
        log.event("error", error="rollback_failed", detail=journal.get("phase"))
        _remove(JOURNAL)  # nothing more to try; what runs now is what there is
        return
    _rollback(journal, hook)


def _enter(journal, phase, hook):
    journal["phase"] = phase
    store.save_json(JOURNAL, journal)
    hook(journal["op"] + ":" + phase)


def _each(journal, key, step, hook):
    """step(path) for every path in journal[key]; hook "op:phase:i" after each."""
    for i, path in enumerate(journal[key]):
        step(path)
        hook("%s:%s:%d" % (journal["op"], journal["phase"], i))


# -- files ------------------------------------------------------------------

def _move(source, target):
    """Rename source to target (replacing it); done already if source is gone."""
    if not _exists(source):
        return
    make_dirs(target.rsplit("/", 1)[0] if "/" in target else "")
    try:
        os.rename(source, target)
    except OSError:  # FAT will not rename over a file
        _remove(target)
        os.rename(source, target)


def _copy(source, target):
    """Copy through a temporary file, so target is whole or absent."""
    make_dirs(target.rsplit("/", 1)[0])
    buf = bytearray(_COPY_CHUNK)
    view = memoryview(buf)
    with open(source, "rb") as src, open(target + ".tmp", "wb") as dst:
        while True:
            count = src.readinto(buf)
            if not count:
                break
            dst.write(view[:count])
    _move(target + ".tmp", target)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _twin(path):
    if path.endswith(".mpy"):
        return path[:-4] + ".py"
    if path.endswith(".py"):
        return path[:-3] + ".mpy"
    return path


def _is_code(path):
    return path.endswith(".py") or path.endswith(".mpy")


def _walk(top):
    """Files under top, as paths relative to it, sorted."""
    found = []
    _walk_into(top, "", found)
    return sorted(found)


def _walk_into(base, rel, found):
    path = base + "/" + rel if rel else base
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        child = rel + "/" + name if rel else name
        if is_dir(base + "/" + child):
            _walk_into(base, child, found)
        elif not name.endswith(".tmp"):
            found.append(child)


def _exists(path):
    return stat_mode(path) is not None


def _is_file(path):
    mode = stat_mode(path)
    return mode is not None and not mode & 0x4000


def _no_hook(name):
    pass
