"""`spotty stats`: the plot's axes (whole counts, a continuous day axis, labels under their
bars, the zone named) and the table, from a reported stats document."""

import datetime

from matplotlib import dates

from host_tools.aws import usage

STATS = {"sessions": 1, "play_s": 59, "motions": 2, "last_motion": 1795348800,
         "by_hour": [0] * 21 + [1, 0, 0],
         "by_day": [["2026-11-28", 1, 59], ["2026-12-01", 2, 3720]]}
SOUTH = "<-04>4<-03>,M9.1.6/24,M4.1.6/24"  # America/Santiago


def test_the_plot_counts_in_whole_sessions_over_every_day_with_labels_under_the_bars():
    fig = usage.plot_figure("kitchen", STATS, SOUTH)
    by_hour, by_day = fig.axes
    assert fig.get_suptitle() == ("kitchen, 2026-11-28 to 2026-12-01\n"
                                  "1 session, 0 h 00 min of music, 2 motions in all")
    fig.canvas.draw()
    for axes in (by_hour, by_day):
        assert all(float(t).is_integer() for t in axes.get_yticks())
        ticks = set(round(t, 6) for t in axes.get_xticks())
        centres = [round(p.get_x() + p.get_width() / 2, 6) for p in axes.patches]
        assert ticks >= set(centres)  # every bar has its label right under its middle
    assert [t.get_text() for t in by_hour.get_xticklabels()] == ["%02d" % h for h in range(24)]
    assert "(-04/-03)" in by_hour.get_xlabel() and "(-04/-03)" in by_day.get_xlabel()
    days = [dates.num2date(p.get_x() + p.get_width() / 2).date() for p in by_day.patches]
    assert days == [datetime.date(2026, 11, 28) + datetime.timedelta(n) for n in range(4)]
    assert [p.get_height() for p in by_day.patches] == [1, 0, 0, 2]
    assert [t.get_text() for t in by_day.get_xticklabels()][:2] == ["Sat\n28 Nov", "Sun\n29 Nov"]


def test_many_days_are_labelled_every_other_day():
    by_day = [["2026-11-01", 1], ["2026-11-30", 1]]
    fig = usage.plot_figure("kitchen", dict(STATS, by_day=by_day), "UTC0")
    fig.canvas.draw()
    labels = [t for t in fig.axes[1].get_xticklabels() if t.get_text()]
    assert 10 <= len(labels) <= usage.DAYS_LABELLED and len(fig.axes[1].patches) == 30


def test_the_table_uses_the_devices_zone_in_the_southern_summer():
    document = {"state": {"reported": {"stats": STATS, "config": {"tz": SOUTH}}}}
    text = usage.render_stats(document)
    assert "last motion   2026-11-22 09:00 -03" in text
    assert "sessions and play time by day (local time, -04/-03)" in text
    assert ("  2026-11-28    1  0 h 00 min\n  2026-11-29    0  0 h 00 min\n"
            "  2026-11-30    0  0 h 00 min\n  2026-12-01    2  1 h 02 min") in text


def test_days_reported_by_earlier_firmware_have_no_play_time():
    days = usage.every_day([["2026-11-28", 1], ["2026-11-29", 2, 60], ["garbage"]])
    assert days == [(datetime.date(2026, 11, 28), 1, None), (datetime.date(2026, 11, 29), 2, 60)]
