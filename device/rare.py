# Rare paths (an update, a certificate check, a pushed token) load their modules
# when needed and drop them afterwards: a stock ESP32 image copies every imported
# module's code into the GC heap, where it would stay for good.
import gc
import sys


def drop(*names):
    """Forget these modules (and their place in their package) so that their code
    can be collected once nothing else refers to it."""
    for name in names:
        if sys.modules.pop(name, None) is not None:
            package, _, leaf = name.rpartition(".")
            parent = sys.modules.get(package)
            if parent is not None and leaf in parent.__dict__:
                delattr(parent, leaf)
    gc.collect()
