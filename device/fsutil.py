# Directory helpers MicroPython's os lacks, for the OTA swap (ota/apply.py) and the
# bundle stager (ota/bundle.py). Only os: boot.py uses it while files move.
import os


def stat_mode(path):
    """os.stat(path)'s mode, or None if there is nothing there."""
    try:
        return os.stat(path)[0]
    except OSError:
        return None


def is_dir(path):
    mode = stat_mode(path)
    return mode is not None and bool(mode & 0x4000)


def make_dirs(path):
    """os.makedirs, which MicroPython lacks."""
    prefix = ""
    for part in path.split("/"):
        prefix += part
        if part and not is_dir(prefix):
            os.mkdir(prefix)
        prefix += "/"


def remove_tree(path):
    """Remove a file or a directory with everything in it; absent is fine."""
    mode = stat_mode(path)
    if mode is None:
        return
    if mode & 0x4000:
        for name in os.listdir(path):
            remove_tree(path + "/" + name)
        os.rmdir(path)
    else:
        os.remove(path)
