"""The settings form of a device's page: its fields, and a posted form read back.

Each value is read and checked as `spotty config set KEY=VALUE` reads it
(`remote_config.parse_assignments`, with the device's own `core.config`), so the form
accepts what the CLI accepts and nothing reaches the shadow that the device would refuse.
Pure apart from that schema.
"""

import json
from dataclasses import dataclass

from ..aws import remote_config
from ..common import devicepath
from ..common.errors import RefusedError

# key: (label, input kind, hint). The order is the form's.
FIELDS = {
    "enabled": ("Music on motion", "bool", ""),
    "spotify_device": ("Speaker", "text", "Spotify Connect speaker, by name or id"),
    "playlist_uri": ("What to play", "text", "a spotify: URI or open.spotify.com link; "
                     "empty resumes what was playing"),
    "volume": ("Volume", "number", "0-100; empty keeps the speaker's volume"),
    "timeout_s": ("Pause after (s)", "number", "seconds without motion"),
    "motion_gap_s": ("Least gap between starts (s)", "number", ""),
    "quiet_start": ("Quiet hours from", "text", "HH:MM, empty for none"),
    "quiet_end": ("Quiet hours until", "text", "HH:MM; may cross midnight"),
    "tz": ("Time zone", "text", "POSIX TZ, e.g. CET-1CEST,M3.5.0,M10.5.0/3"),
    "if_busy": ("If music plays elsewhere", "choice", "skip: leave it; transfer: bring it here"),
}
CHOICES = {"enabled": ("true", "false"), "if_busy": ("skip", "transfer")}
TEXT_VALUES = ("spotify_device",)  # any text is a name: "123" or "null" must stay text


@dataclass
class Field:
    key: str
    label: str
    kind: str
    hint: str
    value: str  # what the input shows
    choices: tuple = ()
    status: str = ""  # "", "applied", "pending", "refused" (by the device) or "invalid"
    message: str = ""


def shown(value) -> str:
    """A setting as its input shows it: null is empty, JSON for the rest but bare text."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def current(document: dict | None) -> dict:
    """What each setting is now, as far as the shadow knows: what was asked (desired), else
    what the device applies (reported), else the default. The shadow keeps null as ""."""
    devicepath.install()
    from core.config import DEFAULTS

    desired_config, reported_config, _, _ = remote_config.sections(document)
    values = {}
    for key, default in DEFAULTS.items():
        if key in desired_config:
            value = desired_config[key]
            values[key] = None if value == "" else value
        elif key in reported_config or not reported_config:
            values[key] = reported_config.get(key, default)
        else:
            values[key] = None  # a reported config leaves null keys out
    return values


def fields(document: dict | None, online: bool | None, submitted: dict | None = None,
           problems: dict | None = None) -> list[Field]:
    """The form: each setting's value and, beside it, pending / refused by the device, or
    (after a refused post) the user's own text and why it was not sent. `online`: the
    card's (None: the device has never reported)."""
    values = current(document)
    asked, reported_config, delta, errors = remote_config.sections(document)
    result = []
    for key, (label, kind, hint) in FIELDS.items():
        field = Field(key, label, kind, hint, shown(values[key]), CHOICES.get(key, ()))
        if problems and key in problems:
            field.value = submitted.get(key, field.value) if submitted else field.value
            field.status, field.message = "invalid", problems[key]
        elif key in delta:
            field.status = "pending"
            field.message = _pending(online, shown(reported_config.get(key)) or "none")
        elif errors.get(key):
            field.status = "refused"
            field.message = "the device refused the last value: %s" % errors[key]
        elif key in asked and key in reported_config:
            field.status, field.message = "applied", "\u2713 applied by the device"
        result.append(field)
    return result


def read_form(document: dict | None, form: dict) -> tuple[dict, dict]:
    """(changes to send, key -> why refused) for the posted settings. Only settings whose
    text differs from what the form showed are sent; any refusal sends nothing."""
    values = current(document)
    changes, problems = {}, {}
    for key in FIELDS:
        text = form.get(key)
        if text is None:
            continue
        text = text.strip()
        if text == shown(values[key]):
            continue
        value = json.dumps(text) if key in TEXT_VALUES else text
        try:
            checked, _ = remote_config.parse_assignments(["%s=%s" % (key, value)])
            changes.update(checked)
        except RefusedError as e:
            problems[key] = _reason(str(e), key)
    return ({} if problems else remote_config.for_shadow(changes)), problems


def _pending(online: bool | None, has: str) -> str:
    if online is None:
        return "pending: the device applies it when it first connects"
    if not online:
        return "pending: the device is offline and applies it when it connects (it has %s)" % has
    return "pending: waiting for the device to apply it (it has %s)" % has


def _reason(message: str, key: str) -> str:
    """"refused: timeout_s must be 1..7200" -> "must be 1..7200": the field names the key."""
    for prefix in ("refused: ", key + " ", key + ": "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    return message
