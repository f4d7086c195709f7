"""What each page shows, from shadow documents and the time: the templates' context. Pure
(apart from drawing the graphs)."""

from dataclasses import dataclass, field

from . import cards, graphs, raw, settings, words
from .cards import Card


@dataclass
class Overview:
    cards: list[Card] = field(default_factory=list)
    others: list[str] = field(default_factory=list)  # things without a SpottyPottySense shadow


@dataclass
class DevicePage:
    thing: str
    card: Card
    fields: list[settings.Field]
    summary: str
    by_hour_svg: str | None
    by_day_svg: str | None
    raw: str
    version: int | None
    notice: str = ""


def is_ours(document: dict | None) -> bool:
    """A thing that has never reported may be a new board; a shadow without our sections
    belongs to something else in the registry."""
    if document is None:
        return True
    state = document.get("state") or {}
    return bool((state.get("reported") or {}).get("status")
                or "config" in (state.get("reported") or {})
                or "config" in (state.get("desired") or {}))


def overview(shadows: list[tuple[str, dict | None | Exception]], now: float) -> Overview:
    """`shadows`: each thing with its document, None when it has none, or the error met
    reading it."""
    page = Overview()
    for thing, document in shadows:
        if isinstance(document, Exception):
            page.cards.append(unreadable(thing, document))
        elif is_ours(document):
            page.cards.append(cards.card(thing, document, now))
        else:
            page.others.append(thing)
    return page


def unreadable(thing: str, error: Exception) -> Card:
    return cards.Card(thing, None, "unknown", "its shadow could not be read",
                      notes=[cards.Note("error", str(error))])


def device(thing: str, document: dict | None, now: float, submitted: dict | None = None,
           problems: dict | None = None, notice: str = "") -> DevicePage:
    card = cards.card(thing, document, now)
    mine = cards.reported(document)
    stats = mine.get("stats") or None
    zone = words.zone((mine.get("config") or {}).get("tz"))
    zone_label = words.utc_offset(_offset_now(zone, now)) if zone else "UTC"
    return DevicePage(
        thing=thing,
        card=card,
        fields=settings.fields(document, card.online, submitted, problems),
        summary=graphs.summary(stats),
        by_hour_svg=graphs.by_hour_svg(stats, zone_label) if stats else None,
        by_day_svg=graphs.by_day_svg(stats) if stats and stats.get("by_day") else None,
        raw=raw.shown(document),
        version=(document or {}).get("version"),
        notice=notice,
    )


def _offset_now(zone, now: float) -> int:
    from core import tz  # installed by words.zone

    return tz.offset_at(zone, int(now))
