from core import otadesired as od
from core import otastate as st


def _staged_and_applied():
    state = st.staged({}, "0.1.0", "0.2.0", "k1")
    assert state["report"] == {"version": "0.2.0", "status": "staged", "previous": "0.1.0"}
    return st.applied(state, "0.2.0", "0.1.0", state["pending"]["key"])


def test_a_normal_boot_writes_nothing():
    assert st.on_boot({}) == (st.NORMAL, None)
    assert st.on_boot({"version": "0.1.0", "crashes": 3}) == (st.NORMAL, None)


def test_applied_version_is_on_trial_and_remembers_what_it_replaced():
    state = _staged_and_applied()
    assert state["version"] == "0.2.0" and state["previous"] == "0.1.0"
    assert state["trial"] is True and state["boots"] == 0 and state["done"] == "k1"
    assert "pending" not in state
    assert state["report"] == {"version": "0.2.0", "status": "applied", "previous": "0.1.0"}


def test_three_boots_without_health_roll_back():
    state = _staged_and_applied()
    for boots in (1, 2, 3):
        mode, state = st.on_boot(state)
        assert mode == st.TRIAL and state["boots"] == boots
    assert st.on_boot(state) == (st.ROLLBACK, None)
    back = st.rolled_back(state, "0.2.0", "0.1.0", "unhealthy")
    assert back["version"] == "0.1.0" and "previous" not in back and not back["trial"]
    assert back["report"] == {"version": "0.2.0", "status": "rolled_back",
                              "reason": "unhealthy", "previous": "0.1.0"}
    assert back["done"] == "k1"  # never downloaded again


def test_healthy_ends_the_trial_once():
    mode, state = st.on_boot(_staged_and_applied())
    state = st.healthy(state)
    assert state["trial"] is False and state["boots"] == 0
    assert st.healthy(state) is None
    assert st.on_boot(state) == (st.NORMAL, None)


def test_crashes_lead_to_safe_mode_but_never_on_trial():
    state = {}
    for _ in range(st.SAFE_CRASHES):
        state = st.crashed(state)
    assert st.on_boot(state) == (st.SAFE, None)
    assert st.calm(state) == {"crashes": 0} and st.calm({"crashes": 0}) is None
    trial = dict(state, trial=True, previous="0.1.0")
    assert st.on_boot(trial)[0] == st.TRIAL
    assert st.on_boot({"crashes": "many"}) == (st.NORMAL, None)


def test_refusals_are_remembered():
    state = st.staged({"version": "0.1.0"}, "0.1.0", "0.2.0", "k2")
    state = st.refused_at_boot(state, "hash_mismatch")
    assert state["done"] == "k2" and "pending" not in state
    assert state["report"] == {"version": "0.2.0", "status": "refused",
                               "reason": "hash_mismatch", "previous": "0.1.0"}
    state = st.refused(state, None, "must be an object", running="0.1.1")
    assert state["done"] == "k2" and state["report"]["version"] is None
    assert state["report"]["previous"] == "0.1.1"


def test_applying_twice_gives_the_same_state():
    state = _staged_and_applied()
    assert st.applied(state, "0.2.0", "0.1.0", "k1") == state


def test_updates_replace_code_and_ca_roots_only():
    assert st.refused_path(["app.mpy", "main.py", "core/x.mpy", "ca/spotify/root.der",
                            "ca/iot/a.der", "ca/ota/b.der"]) is None
    # Roots go into one trust list each: none for all uses, none in a list of its own.
    for bad in ("secrets.json", "token.json", "ca/spotify/root.pem", "ota/pub.bin",
                "ota/previous/app.mpy", "ota/staged/x.py", "ca/root.der", "ca/web/a.der",
                "ca/ota/x/a.der"):
        assert st.refused_path(["app.mpy", bad]) == bad


_JOB = {"request": {"version": "0.2.0"}, "key": "k1", "running": "0.1.0", "attempt": 0}


def test_a_staged_download_ends_the_fetch_and_any_wait():
    state = st.fetched({"fetch": _JOB, "later": {"key": "k0"}}, _JOB, None, 500)
    assert "fetch" not in state and "later" not in state
    assert state["pending"] == {"version": "0.2.0", "key": "k1"}
    assert state["report"]["status"] == "staged"


def test_a_network_failure_is_tried_again_after_the_wait_then_refused_for_good():
    state = st.fetched({"fetch": _JOB}, _JOB, "truncated", 500)
    assert state["later"] == {"key": "k1", "attempt": 1, "wait_ms": 500}
    assert state["report"] == {"version": "0.2.0", "status": "refused", "reason": "truncated",
                               "previous": "0.1.0", "retry": 1}
    assert od.later(state, "k1") == (1, 500) and od.later(state, "k2") == (0, 0)
    last = dict(_JOB, attempt=st.MAX_ATTEMPTS - 1)
    final = st.fetched(state, last, "truncated", 500)
    assert "later" not in final and final["done"] == "k1"
    assert final["report"]["status"] == "refused" and "retry" not in final["report"]


def test_a_download_that_gave_way_to_music_waits_and_keeps_its_attempts():
    state = st.fetched({"report": {"status": "downloading"}}, dict(_JOB, attempt=1),
                       "postponed", 500)
    assert state["later"] == {"key": "k1", "attempt": 1, "wait_ms": st.POSTPONE_MS}
    assert state["report"] == {"status": "downloading"}


def test_a_bad_bundle_is_refused_for_good():
    state = st.fetched({"fetch": _JOB}, _JOB, "bad_signature", 500)
    assert state["done"] == "k1" and "later" not in state and "fetch" not in state
    assert state["report"]["reason"] == "bad_signature"
    assert od.later({"later": "garbage"}, "k1") == (0, 0)


# -- no downgrades: the bundle counter -----------------------------------------------

def _manifest(version, counter):
    manifest = {"version": version}
    if counter is not None:
        manifest["counter"] = counter
    return manifest


def test_a_board_without_a_counter_takes_any_counted_bundle_but_none_without():
    assert st.stale({}, _manifest("0.2.0", 1)) is None
    assert st.stale({"version": "0.1.0"}, _manifest("0.2.0", 1796256000)) is None
    # A bundle built before the rule is as old as bundles get.
    assert st.stale({}, _manifest("0.0.9", None)) == "no_counter"


def test_applying_keeps_the_highest_counter_and_the_version_that_brought_it():
    state = st.applied({"version": "0.1.0"}, "0.2.0", "0.1.0", "k1", 500)
    assert state["counter"] == 500 and state["counter_v"] == "0.2.0"
    # An apply without a counter (a journal of an older firmware) lowers nothing.
    assert st.applied(state, "0.3.0", "0.2.0", "k2")["counter"] == 500
    assert st.applied(state, "0.3.0", "0.2.0", "k2", 400)["counter"] == 500


def test_an_older_signed_bundle_is_refused_as_a_downgrade():
    state = st.applied({"version": "0.1.0"}, "0.2.0", "0.1.0", "k1", 500)
    assert st.stale(state, _manifest("0.1.0", 499)) == "downgrade"
    assert st.stale(state, _manifest("0.3.0", 499)) == "downgrade"  # a name is no counter
    assert st.stale(state, _manifest("0.1.5", 500)) == "downgrade"  # another bundle, same counter
    assert st.stale(state, _manifest("0.2.0", 500)) is None  # the very bundle, again
    # A deliberate rollback is a new bundle of the old version, with a higher counter.
    assert st.stale(state, _manifest("0.1.0", 501)) is None


def test_the_rollback_of_a_failed_trial_keeps_the_counter():
    state = st.applied({"version": "0.1.0"}, "0.2.0", "0.1.0", "k1", 500)
    back = st.rolled_back(state, "0.2.0", "0.1.0", "unhealthy")
    assert back["version"] == "0.1.0" and back["counter"] == 500
    # The version it went back to cannot be pushed again as an old bundle.
    assert st.stale(back, _manifest("0.1.0", 300)) == "downgrade"
