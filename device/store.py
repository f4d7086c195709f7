# JSON files on flash, written atomically: the new content goes to a temp file
# that is then renamed over the old one, so a power cut leaves the old or the
# new file, never a torn one. (Rename replaces atomically on LittleFS and on
# the host; FAT refuses to rename over a file, so there the old one is removed
# first and a cut in between loses it: load() then reports "missing".)
import json
import os


def load_json(name, default):
    """(value, problem): problem is None, "missing" or "corrupt: why"; value falls back."""
    try:
        with open(name) as f:
            return json.load(f), None
    except OSError:
        return default, "missing"
    except (ValueError, UnicodeError) as e:
        return default, "corrupt: %s" % e


def save_json(name, value):
    save_bytes(name, json.dumps(value).encode())


def save_bytes(name, data):
    temp = name + ".tmp"
    with open(temp, "wb") as f:
        f.write(data)
    try:
        os.rename(temp, name)
    except OSError:  # FAT: the target must not exist
        os.remove(name)
        os.rename(temp, name)
