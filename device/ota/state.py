# ota/state.json, the life of the running firmware version (core.otastate), and
# the paths every part of the update machinery shares. Small on purpose: the app
# keeps it loaded, while ota.apply, ota.updater and the verifier load only when
# they have work.
import store

STATE = "ota/state.json"
STAGED = "ota/staged"
JOURNAL = "ota/journal.json"  # a swap under way (ota/apply.py)
PUBKEY = "ota/pub.bin"


def load():
    state, _ = store.load_json(STATE, {})
    return state if isinstance(state, dict) else {}


def save(state):
    store.save_json(STATE, state)
    return state


def ask_fetch(fetch):
    """Ask for a download in a boot of its own (ota.fetch reads this entry)."""
    state = load()
    state["fetch"] = fetch
    save(state)


def update(change, *args):
    """Apply core.otastate's function `change` (by name) to state.json; written only
    when it changes. A rare event: the caller may drop core.otastate afterwards."""
    from core import otastate

    new = getattr(otastate, change)(load(), *args)
    if new is not None:
        save(new)
    return new


def crashed():
    try:
        update("crashed")
    except OSError:
        pass  # a failing flash must not turn one crash into another
