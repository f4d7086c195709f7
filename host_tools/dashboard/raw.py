"""The raw shadow, for the curious, with anything that looks like a secret hidden.

The firmware never reports a secret, but anyone with access to the shadow can write into
`desired`; what the page shows must not depend on that. Pure.
"""

import json
import re

HIDDEN = "(hidden)"
_SECRET_KEY = re.compile(r"password|passwd|secret|credential|private|refresh_token|"
                         r"access_token|^token$|(^|_)key$", re.IGNORECASE)
_SECRET_TEXT = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def redacted(node):
    """A copy of a JSON value with secret-looking keys' values and private keys hidden."""
    if isinstance(node, dict):
        return {key: HIDDEN if _SECRET_KEY.search(str(key)) and node[key] not in (None, "")
                else redacted(value) for key, value in node.items()}
    if isinstance(node, list):
        return [redacted(value) for value in node]
    if isinstance(node, str) and _SECRET_TEXT.search(node):
        return HIDDEN
    return node


def shown(document: dict | None) -> str:
    """The document without its per-key metadata timestamps, redacted, indented."""
    if document is None:
        return "no shadow yet"
    kept = {k: v for k, v in document.items() if k != "metadata"}
    return json.dumps(redacted(kept), indent=2, sort_keys=True)
