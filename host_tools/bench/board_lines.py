"""The memory and TLS figures of a board, in the one line format that `spotty hw-report`
(a real ESP32) and `make bench` (the 32-bit interpreter) both print, so that the two can
be compared line by line.

`figures` maps each key of FIGURES to a number, or to None when there is no figure; then
`figures["skipped"][key]` says why ("skipped: not provisioned for AWS IoT").
"""

# key, label, unit. Heap figures are live bytes of Python objects and code in the GC heap,
# counted from the interpreter's own baseline (see board/report.py).
FIGURES = (
    ("heap_after_boot_kb", "heap after boot", "KB"),
    ("heap_free_kb", "free heap after boot", "KB"),
    ("session_high_water_kb", "session high-water", "KB"),
    ("largest_block_kb", "largest block in the heap", "KB"),
    ("tls_handshake_spotify_ms", "TLS handshake, Spotify API", "ms"),
    ("tls_handshake_aws_ms", "TLS handshake, AWS IoT", "ms"),
)
KEYS = tuple(key for key, _, _ in FIGURES)


def format_lines(figures: dict) -> list[str]:
    skipped = figures.get("skipped") or {}
    lines = []
    for key, label, unit in FIGURES:
        value = figures.get(key)
        if value is None:
            text = skipped.get(key) or "skipped"
        else:
            text = "%8.1f %s" % (value, unit)
        lines.append("  %-28s %s" % (label, text))
    return lines
