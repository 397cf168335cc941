"""Strict Ed25519 verification in pure Python, shared by the conformance checkers.

Implements the rule written in spec/log.md §4 and spec/cap.md §7 (the rules of ed25519-dalek's
`verify_strict`) without relying on any Ed25519 library:

1. s < L;
2. the public key A decodes (y taken modulo p, x recovered with the sign bit) and is not of
   small order;
3. R is the canonical encoding of a point that is not of small order;
4. the canonical encoding of [s]B - [k]A equals R, with k = SHA-512(R || A || M) mod L over the
   bytes as received (cofactorless).
"""
import hashlib

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
IDENTITY = (0, 1, 1, 0)  # extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z


def decode_point(b, canonical=True):
    """RFC 8032 §5.1.3 decoding to affine (x, y), or None.

    canonical=True refuses y >= p and x = 0 with the sign bit set (the rule for R);
    canonical=False reduces y modulo p and keeps x = 0 whatever the sign (the rule for A).
    """
    if len(b) != 32:
        return None
    n = int.from_bytes(b, "little")
    sign, y = n >> 255, n & ((1 << 255) - 1)
    if y >= P:
        if canonical:
            return None
        y -= P
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        if sign and canonical:
            return None
        return 0, y
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if x & 1 != sign:
        x = P - x
    return x, y


def extended(pt):
    x, y = pt
    return x, y, 1, x * y % P


def add(p1, p2):
    """Complete addition on -x^2 + y^2 = 1 + d x^2 y^2 in extended coordinates (RFC 8032 §5.1.4)."""
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % P, g * h % P, f * g % P, e * h % P


def mul(k, pt):
    out = IDENTITY
    while k:
        if k & 1:
            out = add(out, pt)
        pt = add(pt, pt)
        k >>= 1
    return out


def neg(pt):
    x, y, z, t = pt
    return -x % P, y, z, -t % P


def encode(pt):
    x, y, z, _ = pt
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def is_identity(pt):
    x, y, z, _ = pt
    return x % P == 0 and (y - z) % P == 0


def small_order(pt):
    for _ in range(3):  # [8]pt
        pt = add(pt, pt)
    return is_identity(pt)


BASE = extended(decode_point((4 * pow(5, P - 2, P) % P).to_bytes(32, "little")))


def valid_key(pub):
    """Rule 2: pub decodes (y modulo p) to a point that is not of small order."""
    pt = decode_point(pub, canonical=False)
    return pt is not None and not small_order(extended(pt))


def verify_strict(pub, msg, sig):
    """Rules 1-4. pub: 32 bytes, sig: 64 bytes."""
    if len(pub) != 32 or len(sig) != 64:
        return False
    r_bytes, s = sig[:32], int.from_bytes(sig[32:], "little")
    if s >= L or not valid_key(pub):
        return False
    r = decode_point(r_bytes, canonical=True)
    if r is None or small_order(extended(r)):
        return False
    a = extended(decode_point(pub, canonical=False))
    k = int.from_bytes(hashlib.sha512(r_bytes + pub + msg).digest(), "little") % L
    return encode(add(mul(s, BASE), neg(mul(k, a)))) == r_bytes
