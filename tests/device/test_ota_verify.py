"""device/ota under the real MicroPython, against keys, signatures and bundles made on
CPython with `cryptography` (and host_tools.ota.bundles, the bundle builder).

Every case is run in one MicroPython process per fixture; the tests then check each
outcome. A refused bundle must leave nothing staged.
"""

import hashlib
import json
import os
import subprocess

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from host_tools.common.devicepath import REPO
from host_tools.ota import bundles as ota
from host_tools.sim.runtime import micropython_path, run_micropython

N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF

VERIFY_DRIVER = """
import binascii, json, sys
from ota import p256
with open(sys.argv[1]) as f:
    vectors = json.load(f)
print(json.dumps([p256.verify(*[binascii.unhexlify(v) for v in vector]) for vector in vectors]))
"""

STAGE_DRIVER = """
import binascii, hashlib, json, os, sys
from ota import bundle

def listing(root):
    found = {}
    def walk(path, prefix):
        for name in os.listdir(path):
            full = path + "/" + name
            if os.stat(full)[0] & 0x4000:
                walk(full, prefix + name + "/")
            else:
                with open(full, "rb") as f:
                    found[prefix + name] = binascii.hexlify(hashlib.sha256(f.read()).digest())
    walk(root, "")
    return dict((k, v.decode()) for k, v in found.items())

class Failing:
    # a download that breaks off after `limit` bytes
    def __init__(self, f, limit):
        self.f, self.left = f, limit
    def readinto(self, buf):
        if self.left <= 0:
            raise OSError(104)  # ECONNRESET
        count = self.f.readinto(memoryview(buf)[:min(len(buf), self.left)])
        self.left -= count
        return count

def stage(case, pubkey):
    if case.get("stream"):
        with open(case["bundle"], "rb") as f:
            source = Failing(f, case["fail_after"]) if case.get("fail_after") else f
            manifest = bundle.stage_stream(source, pubkey, case["staging"], case.get("size"),
                                           case.get("sha256"))
    else:
        with open(case["bundle"], "rb") as f:
            data = f.read()
        stager = bundle.Stager(pubkey, case["staging"], case.get("size"), case.get("sha256"))
        step = case["chunk"]
        for i in range(0, len(data), step):
            stager.feed(data[i:i + step])
        manifest = stager.finish()
    if case.get("tamper"):
        with open(case["staging"] + "/" + case["tamper"], "ab") as f:
            f.write(b"x")
    if case.get("recheck"):
        bundle.verify_staged(pubkey, case["staging"])
    return manifest

with open(sys.argv[1]) as f:
    cases = json.load(f)
with open(sys.argv[2], "rb") as f:
    pubkey = f.read()
for case in cases:
    try:
        result = {"ok": True, "version": stage(case, pubkey)["version"]}
    except bundle.OtaError as e:
        result = {"ok": False, "reason": e.reason}
    try:
        result["staged"] = listing(case["staging"])
    except OSError:
        result["staged"] = None
    print(json.dumps(result))
"""


def run_driver(tmp_path, source, *args):
    script = tmp_path / "driver.py"
    script.write_text(source)
    proc = run_micropython(
        [str(script), *map(str, args)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def raw_signature(key, digest):
    r, s = utils.decode_dss_signature(key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def host_valid(pubkey, digest, sig):
    """cryptography's verdict on the same raw inputs."""
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + pubkey)
    except ValueError:
        return False
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    if not (0 < r < N and 0 < s < N) or len(digest) != 32:
        return False
    try:
        key.verify(utils.encode_dss_signature(r, s), digest,
                   ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except Exception:
        return False
    return True


def flip(data, index, bit=1):
    out = bytearray(data)
    out[index] ^= bit
    return bytes(out)


def be32(value):
    return value.to_bytes(32, "big")


def key_from_scalar(d):
    return ec.derive_private_key(d, ec.SECP256R1())


def x_of_multiple(k):
    return key_from_scalar(k).public_key().public_numbers().x


# --- signature verification ---------------------------------------------------------------

def verify_cases():
    """(name, pubkey, digest, sig) covering valid, tampered and malformed inputs."""
    cases = []
    for i in range(6):
        key = ec.generate_private_key(ec.SECP256R1())
        pub = ota.public_key_bytes(key.public_key())
        digest = hashlib.sha256(b"message %d" % i).digest()
        sig = raw_signature(key, digest)
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        cases += [
            ("valid%d" % i, pub, digest, sig),
            ("high_s%d" % i, pub, digest, be32(r) + be32(N - s)),  # ECDSA accepts (r, n - s)
            ("digest_bit%d" % i, pub, flip(digest, i * 5, 1 << i), sig),
            ("r_bit%d" % i, pub, digest, flip(sig, i, 4)),
            ("s_bit%d" % i, pub, digest, flip(sig, 63 - i, 2)),
            ("y_bit%d" % i, pub, digest, flip(pub, 63 - i)),
        ]
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    pub = ota.public_key_bytes(key.public_key())
    digest = hashlib.sha256(b"edge cases").digest()
    sig = raw_signature(key, digest)
    r, s = sig[:32], sig[32:]
    zero = be32(0)
    cases += [
        ("wrong_key", ota.public_key_bytes(other.public_key()), digest, sig),
        ("r_zero", pub, digest, zero + s),
        ("s_zero", pub, digest, r + zero),
        ("r_is_n", pub, digest, be32(N) + s),
        ("s_is_n", pub, digest, r + be32(N)),
        ("r_plus_n", pub, digest, be32(int.from_bytes(r, "big") + N)
         if int.from_bytes(r, "big") + N < 2**256 else b"\xff" * 32 + s),
        ("r_max", pub, digest, b"\xff" * 32 + s),
        ("s_max", pub, digest, r + b"\xff" * 32),
        ("zero_sig", pub, digest, bytes(64)),
        ("zero_key", bytes(64), digest, sig),
        ("x_is_p", be32(P) + pub[32:], digest, sig),
        ("ones_key", b"\xff" * 64, digest, sig),
        ("short_sig", pub, digest, sig[:63]),
        ("long_sig", pub, digest, sig + b"\x00"),
        ("short_digest", pub, digest[:31], sig),
        ("short_key", pub[:63], digest, sig),
    ]
    cases += special_key_cases()
    return cases


def special_key_cases():
    """Keys d = 1 (Q = G) and d = n - 1 (Q = -G) drive the point additions into their
    corner cases: adding a point to itself, and sums that reach infinity."""
    cases = []
    for d in (1, N - 1, 2):
        key = key_from_scalar(d)
        pub = ota.public_key_bytes(key.public_key())
        digest = hashlib.sha256(b"d=%d" % d).digest()
        cases.append(("key_%x" % (d % 4096), pub, digest, raw_signature(key, digest)))
    # With Q = G and e == r, u1 == u2: the two NAF digit streams are equal, so every
    # addition of Q's table point lands on the very point just added from G's table.
    k = 0x1234567890ABCDEF
    r = x_of_multiple(k) % N
    s = pow(k, -1, N) * (r + r * 1) % N
    pub_g = ota.public_key_bytes(key_from_scalar(1).public_key())
    cases.append(("equal_digits_valid", pub_g, be32(r), be32(r) + be32(s)))
    # u1 + u2 == 0 (mod n) with Q = G: u1*G + u2*Q is the point at infinity.
    e = int.from_bytes(hashlib.sha256(b"infinity").digest(), "big")
    r_inf = (N - e) % N
    cases.append(("sum_at_infinity", pub_g, be32(e), be32(r_inf) + be32(12345)))
    return cases


@pytest.fixture(scope="module")
def verify_results(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("p256")
    cases = verify_cases()
    vectors = tmp_path / "vectors.json"
    vectors.write_text(json.dumps([[v.hex() for v in case[1:]] for case in cases]))
    verdicts = run_driver(tmp_path, VERIFY_DRIVER, vectors)[0]
    return {
        case[0]: (verdict, host_valid(*case[1:]))
        for case, verdict in zip(cases, verdicts, strict=True)
    }


def test_p256_agrees_with_cryptography_on_every_case(verify_results):
    disagree = {name: v for name, v in verify_results.items() if v[0] != v[1]}
    assert not disagree, disagree


def test_p256_accepts_valid_signatures(verify_results):
    valid = [name for name in verify_results if name.startswith(("valid", "high_s", "key_"))]
    valid.append("equal_digits_valid")
    assert len(valid) == 16
    assert all(verify_results[name][0] for name in valid)


@pytest.mark.parametrize("name", [
    "digest_bit0", "digest_bit5", "r_bit1", "s_bit2", "y_bit3", "wrong_key", "r_zero",
    "s_zero", "r_is_n", "s_is_n", "r_plus_n", "r_max", "s_max", "zero_sig", "zero_key",
    "x_is_p", "ones_key", "short_sig", "long_sig", "short_digest", "short_key",
    "sum_at_infinity",
])
def test_p256_refuses(verify_results, name):
    assert verify_results[name] == (False, False)


# --- bundles ------------------------------------------------------------------------------

FILES = [
    ("main.py", b"import app\napp.run()\n" * 10),
    ("core/session.mpy", os.urandom(3000)),
    ("empty.txt", b""),
    ("net/deep/ca.der", os.urandom(2500)),
    ("last.mpy", os.urandom(700)),
]


def forge(key, files, version="0.2.0", manifest=None, signature=None):
    """A bundle built by hand, so that tests can make it wrong in any one way."""
    manifest = manifest if manifest is not None else ota.manifest_for(files, version)
    manifest_bytes = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    sig = signature if signature is not None else ota.sign(key, manifest_bytes)
    return ota.encode(manifest_bytes, sig, [data for _, data in files])


def expected_listing(files, manifest_and_sig=True):
    listing = {path: hashlib.sha256(data).hexdigest() for path, data in files}
    if manifest_and_sig:
        listing["manifest.json"] = listing["manifest.sig"] = "*"
    return listing


def bundle_cases(key, other):
    good = ota.pack(FILES, "0.2.0", key)
    header_end = len(good) - sum(len(d) for _, d in FILES)
    manifest_len = int.from_bytes(good[8:12], "big")
    first_file = header_end
    last_file = len(good) - len(FILES[-1][1])
    unsigned = forge(key, FILES, signature=b"")
    traversal = {}
    for i, path in enumerate(["../evil.py", "/abs.py", "a/../../x.py", "a//b.py", "a/",
                              "manifest.json", "back\\slash.py", "a/./b.py", "a b.py"]):
        files = [("main.py", b"x"), (path, b"payload")]
        traversal["bad_path_%d" % i] = forge(key, files)
    cases = {
        "good_1": (good, {"chunk": 1}),
        "good_7": (good, {"chunk": 7}),
        "good_1024": (good, {"chunk": 1024}),
        "good_whole": (good, {"chunk": len(good)}),
        "good_stream": (good, {"stream": True}),
        "good_expected": (good, {"chunk": 512, "size": len(good),
                                 "sha256": hashlib.sha256(good).hexdigest(), "recheck": True}),
        "tampered_after_staging": (good, {"chunk": 1024, "tamper": "core/session.mpy",
                                          "recheck": True}),
        "download_breaks": (good, {"stream": True, "fail_after": len(good) - 800}),
        "other_key": (ota.pack(FILES, "0.2.0", other), {"chunk": 7}),
        "zero_signature": (forge(key, FILES, signature=bytes(64)), {"chunk": 7}),
        "unsigned": (unsigned, {"chunk": 7}),
        "flipped_last_file": (flip(good, len(good) - 3), {"chunk": 7}),
        "flipped_first_file": (flip(good, first_file + 10), {"chunk": 1024}),
        "flipped_manifest": (flip(good, 30, 2), {"chunk": 1024}),
        "flipped_signature": (flip(good, 12 + manifest_len + 5), {"chunk": 1024}),
        "too_long_1": (good + b"\x00", {"chunk": 7}),
        "too_long_many": (good + os.urandom(1000), {"chunk": 1024}),
        "bad_magic": (b"HTTP/1.1 404" + good[12:], {"chunk": 7}),
        "empty": (b"", {"chunk": 7}),
        "not_json": (forge(key, FILES, manifest=b"{not json"), {"chunk": 7}),
        "format_2": (forge(key, FILES, manifest=dict(
            ota.manifest_for(FILES, "0.2.0"), format=2)), {"chunk": 7}),
        "counter_text": (forge(key, FILES, manifest=dict(
            ota.manifest_for(FILES, "0.2.0"), counter="9")), {"chunk": 7}),
        "counter_zero": (forge(key, FILES, manifest=dict(
            ota.manifest_for(FILES, "0.2.0"), counter=0)), {"chunk": 7}),
        "negative_size": (forge(key, FILES, manifest={"format": 1, "version": "1", "files": [
            {"path": "a.py", "size": -1, "sha256": "0" * 64}]}), {"chunk": 7}),
        "duplicate_path": (forge(key, [("a.py", b"1"), ("a.py", b"1")]), {"chunk": 7}),
        "file_and_dir": (forge(key, [("a", b"1"), ("a/b.py", b"1")]), {"chunk": 7}),
        "huge_manifest_length": (good[:8] + b"\x7f\xff\xff\xff" + good[12:], {"chunk": 7}),
        "wrong_expected_sha": (good, {"chunk": 1024, "sha256": "ab" * 32}),
        "expected_smaller": (good, {"chunk": 1024, "size": len(good) - 1}),
        "expected_larger": (good, {"chunk": 1024, "size": len(good) + 1}),
    }
    cuts = {"in_magic": 5, "in_length": 10, "in_manifest": 12 + manifest_len // 2,
            "in_signature": 12 + manifest_len + 30, "at_first_file": first_file,
            "in_first_file": first_file + 100, "in_last_file": last_file + 1,
            "one_byte_short": len(good) - 1}
    for name, cut in cuts.items():
        cases["truncated_" + name] = (good[:cut], {"chunk": 7})
    for name, data in traversal.items():
        cases[name] = (data, {"chunk": 7})
    return cases


@pytest.fixture(scope="module")
def keys():
    return ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def stage_results(tmp_path_factory, keys):
    key, other = keys
    tmp_path = tmp_path_factory.mktemp("bundles")
    pubkey = tmp_path / "ota_pub.bin"
    pubkey.write_bytes(ota.public_key_bytes(key.public_key()))
    cases = bundle_cases(key, other)
    listed = []
    for name, (data, options) in cases.items():
        path = tmp_path / (name + ".bundle")
        path.write_bytes(data)
        staging = tmp_path / "staging" / name
        if name == "good_7":  # leftovers of an earlier attempt are replaced
            (staging / "old").mkdir(parents=True)
            (staging / "old" / "stale.mpy").write_bytes(b"stale")
        listed.append(dict(options, bundle=str(path), staging=str(staging)))
    cases_file = tmp_path / "cases.json"
    cases_file.write_text(json.dumps(listed))
    results = run_driver(tmp_path, STAGE_DRIVER, cases_file, pubkey)
    return dict(zip(cases, results, strict=True))


def mask_manifest(listing):
    if listing is None:
        return None
    return {k: "*" if k.startswith("manifest.") else v for k, v in listing.items()}


@pytest.mark.parametrize("name", [
    "good_1", "good_7", "good_1024", "good_whole", "good_stream", "good_expected",
])
def test_good_bundle_stages_every_file(stage_results, name):
    result = stage_results[name]
    assert result["ok"], result
    assert result["version"] == "0.2.0"
    assert mask_manifest(result["staged"]) == expected_listing(FILES)


def test_chunk_sizes_give_the_same_staging(stage_results):
    staged = [stage_results[n]["staged"] for n in ("good_1", "good_7", "good_1024")]
    assert staged[0] == staged[1] == staged[2]


REFUSED = {
    "other_key": "bad_signature",
    "zero_signature": "bad_signature",
    "unsigned": "bad_signature",
    "flipped_manifest": "bad_signature",
    "flipped_signature": "bad_signature",
    "flipped_last_file": "hash_mismatch",
    "flipped_first_file": "hash_mismatch",
    "too_long_1": "too_long",
    "too_long_many": "too_long",
    "bad_magic": "bad_magic",
    "empty": "truncated",
    "not_json": "bad_manifest",
    "format_2": "bad_manifest",
    "counter_text": "bad_manifest",
    "counter_zero": "bad_manifest",
    "negative_size": "bad_manifest",
    "duplicate_path": "bad_path",
    "file_and_dir": "bad_path",
    "huge_manifest_length": "bad_manifest",
    "wrong_expected_sha": "bundle_hash_mismatch",
    "expected_smaller": "too_long",
    "expected_larger": "size_mismatch",
}
REFUSED.update({"truncated_" + cut: "truncated" for cut in (
    "in_magic", "in_length", "in_manifest", "in_signature", "at_first_file", "in_first_file",
    "in_last_file", "one_byte_short")})
REFUSED.update({"bad_path_%d" % i: "bad_path" for i in range(9)})


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_bad_bundle_is_refused_and_nothing_stays_staged(stage_results, name):
    result = stage_results[name]
    assert not result["ok"], result
    assert result["reason"] == REFUSED[name]
    assert result["staged"] is None


def test_a_broken_download_is_an_io_error_and_nothing_stays_staged(stage_results):
    assert stage_results["download_breaks"] == {"ok": False, "reason": "io", "staged": None}


def test_verify_staged_catches_a_file_changed_after_staging(stage_results):
    result = stage_results["tampered_after_staging"]
    assert result["reason"] == "hash_mismatch"
    assert "manifest.json" in result["staged"]  # checking again never deletes anything


def test_unsigned_bundle_is_refused_even_though_every_hash_matches(stage_results):
    # zero_signature carries the right files with the right hashes: only the signature is off.
    assert stage_results["zero_signature"]["reason"] == "bad_signature"


# --- the real firmware --------------------------------------------------------------------

def test_built_firmware_stages_and_imports_on_micropython(tmp_path, keys):
    key, _ = keys
    key_path = tmp_path / "ota_key.pem"
    key_path.write_bytes(key.private_bytes(
        ota.serialization.Encoding.PEM, ota.serialization.PrivateFormat.PKCS8,
        ota.serialization.NoEncryption()))
    pubkey = tmp_path / "ota_pub.bin"
    pubkey.write_bytes(ota.public_key_bytes(key.public_key()))
    out = tmp_path / "fw.bundle"
    info = ota.build(REPO / "device", "0.2.0", key_path, out)
    staging = tmp_path / "staged"
    case = {"bundle": str(out), "staging": str(staging), "stream": True,
            "size": info["size"], "sha256": info["sha256"], "recheck": True}
    cases_file = tmp_path / "cases.json"
    cases_file.write_text(json.dumps([case]))
    result = run_driver(tmp_path, STAGE_DRIVER, cases_file, pubkey)[0]
    assert result["ok"], result
    assert set(result["staged"]) == {f["path"] for f in info["files"]} | {
        "manifest.json", "manifest.sig"}
    # The staged bytecode (built for the ESP32) imports on the unix port, from staging only.
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([str(staging), ".frozen"]))
    proc = subprocess.run(
        [micropython_path(), "-c", "import core.session, ota.bundle; print(ota.bundle.MAGIC)"],
        env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SPOTA" in proc.stdout
