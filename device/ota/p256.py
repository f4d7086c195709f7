# ECDSA signature verification on NIST P-256 with SHA-256 digests, in pure
# MicroPython big-int arithmetic (SEC 1 v2 §4.1.4, FIPS 186-4 §6.4).
#
# Only public values take part in a verification, so nothing here needs to
# run in constant time; what matters is the number of big-int operations, since
# each one allocates. Hence: Jacobian coordinates (no inversion per step), the
# a = -3 doubling formula, additions of affine table points (mixed addition),
# and u1*G + u2*Q in one pass of 256 doublings (Shamir's trick) with width-5
# NAF digits, so only about one bit in six costs an addition.
from micropython import const

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5

_TABLE_SIZE = const(8)  # odd multiples 1, 3, ..., 15 of a point
_NAF_LENGTH = const(257)  # a NAF may be one digit longer than its number


def verify(pubkey, digest, sig):
    """True if sig (r || s, 64 bytes) signs digest (32 bytes) for pubkey (X || Y, 64 bytes).

    Anything malformed (lengths, a key off the curve, r or s outside [1, n-1]) is
    simply not a valid signature: this returns False and never raises for bad input.
    """
    if len(pubkey) != 64 or len(digest) != 32 or len(sig) != 64:
        return False
    qx = int.from_bytes(pubkey[:32], "big")
    qy = int.from_bytes(pubkey[32:], "big")
    if not on_curve(qx, qy):
        return False
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    if not (0 < r < N and 0 < s < N):
        return False
    # SHA-256 digests are exactly as long as n, so no truncation is needed.
    e = int.from_bytes(digest, "big")
    w = inverse(s, N)
    x = _x_of_sum(e * w % N, r * w % N, qx, qy)
    return x is not None and x % N == r


def on_curve(x, y):
    """(x, y) is an affine point of P-256 (the point at infinity has no such form)."""
    if not (0 <= x < P and 0 <= y < P):
        return False
    return (y * y - (x * x * x - 3 * x + B)) % P == 0


def inverse(a, m):
    """a ** -1 mod m, m prime. Extended Euclid: 3-argument pow is optional in MicroPython."""
    a %= m
    if a == 0:
        raise ZeroDivisionError("no inverse of 0")
    old_r, r = m, a
    old_t, t = 0, 1  # invariant: t * a == r (mod m)
    while r:
        q = old_r // r
        old_r, r = r, old_r - q * r
        old_t, t = t, old_t - q * t
    return old_t % m


def _x_of_sum(u1, u2, qx, qy):
    """Affine x of u1*G + u2*Q, or None for the point at infinity."""
    # G's table is rebuilt on each call rather than kept: a device verifies once per
    # update, and a cached table would hold a few KB of heap for nothing ever after.
    g_table = _table(GX, GY)
    q_table = _table(qx, qy)
    digits1 = _naf(u1)
    digits2 = _naf(u2)
    x, y, z = 1, 1, 0
    p = P
    for i in range(_NAF_LENGTH - 1, -1, -1):
        # _double, inlined: 257 doublings are 3/4 of the work, and inline they run
        # about a quarter faster on MicroPython.
        if z:
            zz = z * z % p
            yy = y * y % p
            beta = x * yy % p
            alpha = 3 * (x - zz) * (x + zz) % p
            x = (alpha * alpha - 8 * beta) % p
            z = 2 * y * z % p
            y = (alpha * (4 * beta - x) - 8 * yy * yy) % p
        j = digits1[i]
        if j:
            x, y, z = _add_entry(x, y, z, g_table, j)
        j = digits2[i]
        if j:
            x, y, z = _add_entry(x, y, z, q_table, j)
    if z == 0:
        return None
    zi = inverse(z, P)
    return x * zi * zi % P


def _naf(k):
    """Width-5 NAF of 0 <= k < 2**256, least significant digit first. Each non-zero
    digit is odd, in [-15, 15], and followed by at least four zeros; it is stored as
    an index for _add_entry (in a bytearray: a list of ints takes 8 times the memory)."""
    digits = bytearray(_NAF_LENGTH)
    i = 0
    while k:
        if k & 1:
            d = k & 31
            if d > 16:
                d -= 32
                digits[i] = _TABLE_SIZE + ((-d) >> 1) + 1
            else:
                digits[i] = (d >> 1) + 1
            k -= d
        k >>= 1
        i += 1
    return digits


def _table(x, y):
    """Index 1 + i holds (2i + 1) * (x, y) as an affine point, for i in 0 .. _TABLE_SIZE - 1;
    index 0 (digit 0) is unused."""
    dx, dy, dz = _double(x, y, 1)
    twice = _to_affine([(dx, dy, dz)])[0]
    points = [(x, y, 1)]
    for _ in range(_TABLE_SIZE - 1):
        px, py, pz = points[-1]
        points.append(_add_affine(px, py, pz, twice[0], twice[1]))
    return [None] + _to_affine(points)


def _add_entry(x, y, z, table, j):
    """Add the table point of NAF index j; above _TABLE_SIZE, the negated point (-y) is
    meant: negating on the fly costs less than storing a second table."""
    if j > _TABLE_SIZE:
        tx, ty = table[j - _TABLE_SIZE]
        return _add_affine(x, y, z, tx, P - ty)
    tx, ty = table[j]
    return _add_affine(x, y, z, tx, ty)


def _to_affine(points):
    """Jacobian points (none at infinity) to affine with one inversion (Montgomery's trick)."""
    prefix = []
    acc = 1
    for p in points:
        acc = acc * p[2] % P
        prefix.append(acc)
    inv = inverse(acc, P)
    out = [None] * len(points)
    for i in range(len(points) - 1, -1, -1):
        x, y, z = points[i]
        zi = inv * prefix[i - 1] % P if i else inv
        inv = inv * z % P
        zi2 = zi * zi % P
        out[i] = (x * zi2 % P, y * zi2 * zi % P)
    return out


def _double(x, y, z):
    """2 * (x, y, z) in Jacobian coordinates, using a = -3 (z == 0 is infinity)."""
    if z == 0 or y == 0:
        return 1, 1, 0
    zz = z * z % P
    yy = y * y % P
    beta = x * yy % P
    alpha = 3 * (x - zz) * (x + zz) % P
    x3 = (alpha * alpha - 8 * beta) % P
    z3 = 2 * y * z % P
    y3 = (alpha * (4 * beta - x3) - 8 * yy * yy) % P
    return x3, y3, z3


def _add_affine(x1, y1, z1, x2, y2):
    """(x1, y1, z1) + (x2, y2, 1): Jacobian plus affine."""
    if z1 == 0:
        return x2, y2, 1
    zz = z1 * z1 % P
    h = (x2 * zz - x1) % P
    r = (y2 * (z1 * zz % P) - y1) % P
    if h == 0:
        # Same x: either the same point (double it) or its negation (infinity).
        return _double(x2, y2, 1) if r == 0 else (1, 1, 0)
    hh = h * h % P
    hhh = h * hh % P
    v = x1 * hh % P
    x3 = (r * r - hhh - 2 * v) % P
    y3 = (r * (v - x3) - y1 * hhh) % P
    return x3, y3, z1 * h % P
