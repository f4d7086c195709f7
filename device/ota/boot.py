# Runs first at every boot (main.py), before the app is imported. A boot the app asked
# for to download an update runs ota/fetch.py and nothing else. Most other boots have
# nothing to finish, apply or roll back, and are told apart here from state.json and
# two paths: only the others load the swap machinery (ota/apply.py), whose code and
# interned names would otherwise stay in the heap for good (some 6 KB of a 112 KB heap).
# ota/apply.mpy sorts before ota/boot.mpy, so an update installs it first: a boot.mpy
# of a new version finds the apply.mpy it needs, even after a power cut mid-swap.
import log
import rare
from fsutil import stat_mode
from ota.state import JOURNAL, STAGED, load


def run(board):
    """Boot: returns {"mode": normal|trial|safe, "version": ...}, or resets the board."""
    state = load()
    if state.get("fetch"):
        from ota import fetch

        fetch.run(board, state)  # ends in a reset
    if (state.get("trial") or state.get("crashes") or stat_mode(JOURNAL) is not None
            or stat_mode(STAGED) is not None):
        from ota import apply

        try:
            return apply.run(board)
        finally:
            rare.drop("ota.apply")
    version = state.get("version")
    log.event("boot", mode="normal", version=version, boots=state.get("boots"),
              crashes=state.get("crashes"))
    return {"mode": "normal", "version": version}
