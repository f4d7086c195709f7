"""OTA figures for `make bench`, measured on the unix-port MicroPython: one ECDSA P-256
verification, and staging (verifying + writing) a bundle of the real firmware.

The host is far faster than an ESP32 (roughly 50-100x for big-int work), so these
are relative figures: they show regressions, not the device's wait.
"""

import json
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..common.devicepath import DEVICE_DIR
from ..common.errors import SpottyError
from ..ota import bundles
from ..sim.runtime import run_micropython

RUNS = 20

_DRIVER = """
import gc, hashlib, json, sys, time
from ota import bundle, p256

def elapsed_ms(start):
    return time.ticks_diff(time.ticks_us(), start) / 1000

with open(sys.argv[1], "rb") as f:
    pubkey = f.read()
with open(sys.argv[2], "rb") as f:
    signed = f.read()
runs = int(sys.argv[5])
digest = hashlib.sha256(signed).digest()
with open(sys.argv[3], "rb") as f:
    sig = f.read()
if sys.argv[6] == "stage":
    gc.collect()
    start = time.ticks_us()
    with open(sys.argv[4], "rb") as f:
        bundle.stage_stream(f, pubkey, sys.argv[7])
    print(json.dumps({"bundle_ms": elapsed_ms(start)}))
else:
    start = time.ticks_us()
    assert p256.verify(pubkey, digest, sig)
    first = elapsed_ms(start)
    times = []
    for _ in range(runs):
        start = time.ticks_us()
        assert p256.verify(pubkey, digest, sig)
        times.append(elapsed_ms(start))
    times.sort()
    print(json.dumps({"first_verify_ms": first, "verify_ms": times[len(times) // 2]}))
"""


def verify_timing(runs: int = RUNS, heap: bool = False) -> dict:
    """{"verify_ms": median of `runs` verifications, "first_verify_ms": the first one
    (cold, as on a device that verifies once per update), "bundle_ms": staging the real
    firmware bundle (signature, hashes, writes), "bundle_bytes", "files"}; with
    heap=True also "min_heap_kb", the smallest -X heapsize that still stages it."""
    key = ec.generate_private_key(ec.SECP256R1())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        key_path = tmp / "ota_key.pem"
        key_path.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        pub = tmp / "pub.bin"
        pub.write_bytes(bundles.public_key_bytes(key.public_key()))
        message = b"SpottyPottySense OTA bench"
        (tmp / "msg").write_bytes(message)
        (tmp / "sig").write_bytes(bundles.sign(key, message))
        info = bundles.build(DEVICE_DIR, "bench", key_path, tmp / "fw.bundle")
        args = [tmp / "driver.py", pub, tmp / "msg", tmp / "sig", tmp / "fw.bundle", runs]
        (tmp / "driver.py").write_text(_DRIVER)
        figures = _run(args + ["verify", "-"])
        figures.update(_run(args + ["stage", tmp / "firmware"]))
        figures["bundle_bytes"] = info["size"]
        figures["files"] = len(info["files"])
        if heap:
            # Run from the staged bytecode, as a device does: compiling the modules from
            # source would need far more heap than the verification itself.
            figures["min_heap_kb"] = _min_heap_kb(args + ["stage", tmp / "staging"],
                                                  tmp / "firmware")
    return figures


def _run(args, heapsize=None, firmware=None):
    proc = run_micropython(
        [str(a) for a in args], extra_paths=[firmware] if firmware else (), heapsize=heapsize,
        capture_output=True, text=True, timeout=300,
    )
    if proc.returncode != 0:
        raise SpottyError("OTA bench failed:\n" + proc.stdout[-2000:] + proc.stderr[-2000:])
    return json.loads(proc.stdout.splitlines()[-1])


def _min_heap_kb(args, firmware, low=2, high=128):
    """Bisect -X heapsize (in KB) between a size that fails and one that works."""
    def works(kb):
        try:
            _run(args, heapsize="%dK" % kb, firmware=firmware)
        except SpottyError:
            return False
        return True

    if not works(high):
        raise SpottyError("OTA staging fails even with a %d KB heap" % high)
    while high - low > 1:
        middle = (low + high) // 2
        if works(middle):
            high = middle
        else:
            low = middle
    return high


def main(all_figures: dict) -> None:
    figures = verify_timing(heap=True)
    all_figures.update({"ota_" + key: value for key, value in figures.items()})
    print("OTA (unix-port MicroPython; an ESP32 is far slower):")
    print("  ECDSA P-256 verify     %7.1f ms median (first call: %.1f ms)" % (
        figures["verify_ms"], figures["first_verify_ms"]))
    print("  stage firmware bundle  %7.1f ms  (%d files, %d bytes, min heap %d KB)" % (
        figures["bundle_ms"], figures["files"], figures["bundle_bytes"], figures["min_heap_kb"]))


if __name__ == "__main__":
    main()
