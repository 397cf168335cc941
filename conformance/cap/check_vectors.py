#!/usr/bin/env python3
"""Independent checker for conformance/vectors/cap/*.json, written from spec/cap.md.

Usage: python3 conformance/cap/check_vectors.py [VECTOR_DIR]
Needs: pip install blake3 cryptography
"""
import json, re, sys
from pathlib import Path
from blake3 import blake3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

sys.dont_write_bytecode = True  # keep the shared module from leaving __pycache__ in the tree
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ed25519_strict import valid_key, verify_strict  # noqa: E402  (§7)
from report import run  # noqa: E402

# §1.1 Parameters
VERSION, MAX_CHAIN_LEN, MAX_LINKS, MAX_PATH_COMPONENTS, MAX_COMPONENT_LEN = 1, 4096, 8, 16, 64
MAX_REVOCATION_LEN, MAX_INVOCATION_LEN, MAX_LIFETIME, DEFAULT_SKEW = 171, 262, 300, 60
NEVER = U64 = 2**64 - 1

# §2 Domain separation
def derive_key(context, material=b""): return blake3(material, derive_key_context=context).digest()
LINK_SIG, REVOKE_SIG = b"isocore/cap/v1/link\x00", b"isocore/cap/v1/revoke\x00"
INVOKE_SIG, SESSION_SIG = b"isocore/cap/v1/invoke\x00", b"isocore/cap/v1/session-proof\x00"

# §3 Key ladder
def public(seed): return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
def write_seed(root_seed, e): return derive_key("isocore/cap/v1/ladder/write", root_seed + e.to_bytes(8, "little"))
def read_seed(ws): return derive_key("isocore/cap/v1/ladder/read", ws)
def content_key(rs): return derive_key("isocore/cap/v1/ladder/content", rs)
def write_auth(ws): return public(derive_key("isocore/cap/v1/ladder/write-auth", ws))
def read_auth(rs): return public(derive_key("isocore/cap/v1/ladder/read-auth", rs))
def component_key(node_seed, c): return public(derive_key("isocore/cap/v1/component-key", node_seed + c))
def interface_id(name): return derive_key("isocore/cap/v1/interface-id", name.encode())

# §14 Refusals
class Refusal(Exception):
    def __init__(self, name, link=None, dimension=None, decode=None, watermark=None):
        super().__init__(name)
        self.name, self.link, self.dimension, self.decode, self.watermark = name, link, dimension, decode, watermark
    def __str__(self):
        extra = [f"{k}={v}" for k, v in (("decode", self.decode), ("link", self.link),
                 ("dimension", self.dimension), ("watermark", self.watermark)) if v is not None]
        return self.name + (f"({', '.join(extra)})" if extra else "")

def bad(kind, link=None): return Refusal("Decode", decode=kind, link=link)

# §4.1 Varints and the strict reader
class Reader:
    def __init__(self, buf): self.buf, self.pos = buf, 0
    def take(self, n):
        if self.pos + n > len(self.buf): raise bad("Truncated")
        out = self.buf[self.pos:self.pos + n]; self.pos += n
        return out
    def u8(self): return self.take(1)[0]
    def varint(self):
        v = 0
        for i in range(10):
            c = self.u8()
            if i == 9 and c > 1: raise bad("VarintOverflow")
            v |= (c & 0x7F) << (7 * i)
            if c < 0x80:
                if i > 0 and c == 0: raise bad("NonCanonicalVarint")
                return v
        raise AssertionError("unreachable: the 10th byte ends the varint or overflows")
    def finish(self):
        if self.pos != len(self.buf): raise bad("TrailingBytes")

def enc_varint(v):
    out = bytearray()
    while v >= 0x80: out.append(v & 0x7F | 0x80); v >>= 7
    return bytes(out + bytes([v]))

# §4.2, §4.4 Chains
KINDS = {0: "channel", 1: "write-auth", 2: "read-auth", 3: "node"}
MODES = ["relay", "read", "write", "admin"]

def valid_component(c): return 1 <= len(c) <= MAX_COMPONENT_LEN and c not in (b".", b"..") and b"/" not in c and b"\0" not in c

def decode_link(r, n, channel, total):
    start = r.pos
    flags = r.u8()                                                             # 5.1
    if flags & 0x80 or (channel and flags & 0x40) or (not channel and flags & 0x33): raise bad("BadFlags", n)
    link = {"mode": flags & 3, "audience": r.take(32), "depth": r.u8(),       # 5.2
            "not_before": r.varint() if flags & 0x04 else None,               # 5.3
            "expires": r.varint() if flags & 0x08 else None,
            "path": [], "range": None, "component": None, "interface": None,
            "methods": None, "fuel": None, "rate": None}
    if flags & 0x10:                                                          # 5.4
        count = r.u8(); total[0] += count
        if count == 0 or total[0] > MAX_PATH_COMPONENTS: raise bad("BadPath", n)
        for _ in range(count):
            c = r.take(r.u8())
            if not valid_component(c): raise bad("BadPath", n)
            link["path"].append(c)
    if flags & 0x20:                                                          # 5.5
        link["range"] = (r.varint(), r.varint())
        if link["range"] == (0, 0): raise bad("BadValue")
    if flags & 0x40:                                                          # 5.6
        f = r.u8()
        if f & 0xE0: raise bad("BadFlags", n)
        if f == 0: raise bad("BadValue")
        if f & 1: link["component"] = r.take(32)
        if f & 2: link["interface"] = r.take(32)
        for bit, name in ((4, "methods"), (8, "fuel"), (16, "rate")):
            if f & bit: link[name] = r.varint()
    link["payload"] = r.buf[start:r.pos]
    link["signature"] = r.take(64)                                            # 5.7
    return link

def decode_chain(buf):
    if len(buf) > MAX_CHAIN_LEN: raise bad("TooLong")                        # 1
    r = Reader(buf)
    if r.u8() != VERSION: raise bad("UnknownVersion")                        # 2
    kind = r.u8()                                                             # 3
    if kind not in KINDS: raise bad("UnknownRoot")
    subject = r.take(32)
    epoch = r.varint() if kind in (1, 2) else None
    header = buf[:r.pos]
    count = r.u8()                                                            # 4
    if count == 0 or count > MAX_LINKS: raise bad("LinkCount")
    total = [0]
    links = [decode_link(r, n, kind != 3, total) for n in range(1, count + 1)]  # 5
    r.finish()                                                                # 6
    return {"header": header, "kind": kind, "subject": subject, "epoch": epoch, "links": links}

def encode_chain(c):  # §4.4 canonical form: re-encoding what decoded gives the input back
    out = bytearray(c["header"] + bytes([len(c["links"])]))
    for l in c["links"]:
        inv = [l[k] for k in ("component", "interface", "methods", "fuel", "rate")]
        flags = (l["mode"] | (l["not_before"] is not None) << 2 | (l["expires"] is not None) << 3
                 | bool(l["path"]) << 4 | (l["range"] is not None) << 5 | any(v is not None for v in inv) << 6)
        out += bytes([flags]) + l["audience"] + bytes([l["depth"]])
        out += b"".join(enc_varint(l[k]) for k in ("not_before", "expires") if l[k] is not None)
        if l["path"]: out += bytes([len(l["path"])]) + b"".join(bytes([len(c_)]) + c_ for c_ in l["path"])
        if l["range"]: out += enc_varint(l["range"][0]) + enc_varint(l["range"][1])
        if flags & 0x40:
            out.append(sum(1 << i for i, v in enumerate(inv) if v is not None))
            out += b"".join(v for v in inv[:2] if v is not None) + b"".join(enc_varint(v) for v in inv[2:] if v is not None)
        out += l["signature"]
    return bytes(out)

# §4.3 Ids
def root_id(header): return derive_key("isocore/cap/v1/chain-root", header)
def link_id(parent, payload, sig): return derive_key("isocore/cap/v1/link-id", parent + payload + sig)

# §5.2 Scope, §5.3 Narrowing
def root_scope(kind):
    return {"mode": {0: 3, 1: 2, 2: 1, 3: 0}[kind], "path": [], "range": (0, NEVER), "window": (0, NEVER),
            "component": None, "interface": None, "methods": U64, "fuel": None, "rate": None, "depth": MAX_LINKS}

def narrow(s, l, n):
    def widened(d): return Refusal("Widened", link=n, dimension=d)
    if l["mode"] > s["mode"]: raise widened("mode")                            # 1
    if l["depth"] >= s["depth"]: raise widened("depth")                        # 2
    nb, exp = s["window"]
    if l["not_before"] is not None:                                            # 3
        if l["not_before"] < nb: raise widened("window")
        nb = l["not_before"]
    if l["expires"] is not None:                                               # 4
        if l["expires"] > exp: raise widened("window")
        exp = l["expires"]
    if nb >= exp: raise Refusal("EmptyWindow", link=n)                        # 5
    lo, hi = s["range"]
    if l["range"] is not None:                                                 # 6
        lo, hi = lo + l["range"][0], hi - l["range"][1]
        if lo > U64 or hi < 0 or lo > hi: raise widened("range")
    t = dict(s, mode=l["mode"], depth=l["depth"], window=(nb, exp), range=(lo, hi), path=s["path"] + l["path"])  # 7
    for k in ("component", "interface"):                                       # 8, 9
        if l[k] is not None:
            if s[k] is not None: raise widened(k)
            t[k] = l[k]
    if l["methods"] is not None:                                               # 10
        if l["methods"] & ~s["methods"]: raise widened("methods")
        t["methods"] = l["methods"]
    for k in ("fuel", "rate"):                                                 # 11, 12
        if l[k] is not None:
            if s[k] is not None and l[k] > s[k]: raise widened(k)
            t[k] = l[k]
    return t

# §8 Time
def window_check(window, now, skew):
    nb, exp = window
    if min(now + skew, U64) < nb: raise Refusal("NotYetValid")
    if max(now - skew, 0) >= exp: raise Refusal("Expired")

# §9 Revocation
def decode_revocation(buf):
    if len(buf) > MAX_REVOCATION_LEN: raise bad("TooLong")
    r = Reader(buf)
    if r.u8() != VERSION: raise bad("UnknownVersion")
    subject, target, revoker, watermark = r.take(32), r.take(32), r.take(32), r.varint()
    body, sig = buf[:r.pos], r.take(64)
    r.finish()
    return (subject, target, revoker, watermark), body, sig

def accept_revocation(buf):
    rec, body, sig = decode_revocation(buf)
    if not valid_key(rec[2]): raise Refusal("BadKey", link=0)
    if not verify_strict(rec[2], REVOKE_SIG + body, sig): raise Refusal("BadSignature", link=0)
    return rec

class RevocationSet:
    def __init__(self): self.records, self.generation = set(), 0
    def insert(self, buf):
        rec = accept_revocation(buf)
        if rec not in self.records: self.records.add(rec); self.generation += 1
    def find(self, subject, issuers, ids):
        for n, i in enumerate(ids, 1):
            marks = [w for (s, t, r, w) in self.records
                     if t == i and s == subject and (r == subject or r in issuers[:n])]
            if marks: return n, min(marks)
        return None

# §6 Verification
def verify(buf, now, skew, epochs, revocations):
    c = decode_chain(buf)                                                      # 1
    kind, subject = c["kind"], c["subject"]
    if kind in (0, 3): issuer = subject                                        # 2
    else:
        keys = epochs.get((subject, c["epoch"]))
        if keys is None: raise Refusal("UnknownRoot")
        issuer = keys[0] if kind == 1 else keys[1]
    scope = root_scope(kind)
    for n, l in enumerate(c["links"], 1): scope = narrow(scope, l, n)          # 3
    window_check(scope["window"], now, skew)                                   # 4
    parent, issuers, ids = root_id(c["header"]), [], []
    for n, l in enumerate(c["links"], 1):                                      # 5
        if not valid_key(issuer): raise Refusal("BadKey", link=n)
        if not verify_strict(issuer, LINK_SIG + parent + l["payload"], l["signature"]):
            raise Refusal("BadSignature", link=n)
        parent = link_id(parent, l["payload"], l["signature"])
        issuers.append(issuer); ids.append(parent); issuer = l["audience"]
    hit = revocations.find(subject, issuers, ids)                              # 6
    if hit: raise Refusal("Revoked", link=hit[0], watermark=hit[1])
    return {"root": {"kind": KINDS[kind], "subject": subject.hex(), "epoch": c["epoch"]},   # 7
            "mode": MODES[scope["mode"]], "path": [p.hex() for p in scope["path"]],
            "range": list(scope["range"]), "window": list(scope["window"]),
            "invoke": {"component": scope["component"] and scope["component"].hex(),
                       "interface": scope["interface"] and scope["interface"].hex(),
                       "methods": scope["methods"], "fuel": scope["fuel"], "rate": scope["rate"]},
            "depth": scope["depth"], "holder": issuer.hex(), "links": [i.hex() for i in ids]}

# §10 Using a capability
def permits(cap, access):
    if access[0] == "channel":
        _, mode, path, key = access
        if cap["root"]["kind"] == "node" or MODES.index(mode) > MODES.index(cap["mode"]): return "mode"
        if [bytes.fromhex(p) for p in cap["path"]] != path[:len(cap["path"])]: return "path"
        if not cap["range"][0] <= key < cap["range"][1]: return "range"
    else:
        _, component, interface, method, fuel = access
        inv = cap["invoke"]
        if cap["root"]["kind"] != "node" or inv["component"] not in (None, component.hex()): return "component"
        if inv["interface"] not in (None, interface.hex()): return "interface"
        if method >= 64 or not inv["methods"] >> method & 1: return "methods"
        if inv["fuel"] is not None and fuel > inv["fuel"]: return "fuel"
    return None

# §12 Detached invocations (layout only: no vectors cover them)
def decode_invocation(buf):
    if len(buf) > MAX_INVOCATION_LEN: raise bad("TooLong")
    r = Reader(buf)
    if r.u8() != VERSION: raise bad("UnknownVersion")
    inv = {"head": r.take(32), "executor": r.take(32), "component": r.take(32), "interface": r.take(32),
           "method": r.u8(), "fuel": r.varint(), "args": r.take(32), "nonce": r.take(16), "expires": r.varint()}
    body, sig = buf[:r.pos], r.take(64)
    r.finish()
    return inv, body, sig

# Vector checks: each yields (id, ok, detail)
H = bytes.fromhex
def snake(obj):  # accept camelCase field names as well as snake_case
    if isinstance(obj, dict): return {re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", k).lower(): snake(v) for k, v in obj.items()}
    if isinstance(obj, list): return [snake(v) for v in obj]
    return obj
def lower(obj):
    if isinstance(obj, dict): return {k: lower(v) for k, v in obj.items()}
    if isinstance(obj, list): return [lower(v) for v in obj]
    return obj.lower() if isinstance(obj, str) else obj

def same_refusal(t, got):
    """Compares the expected error of an invalid vector with a Refusal (None: it was accepted)."""
    if got is None: return False, "accepted"
    want = t.get("error")
    name_ok = want is None or want == got.name or (got.name == "Decode" and want == got.decode)
    diffs = [] if name_ok else [f"error {want}"]
    for k in ("link", "dimension", "decode", "watermark"):
        if k in t and t[k] is not None and t[k] != getattr(got, k):
            diffs.append(f"{k} {t[k]}")
    return not diffs, f"got {got}, expected {', '.join(diffs)}"

def check_chains(doc):
    for g in doc["testGroups"]:
        if g.get("type", "ChainVerify") != "ChainVerify":
            yield f"group {g.get('type')}", False, "unknown group type"; continue
        epochs = {(H(e["channel"]), e["epoch"]): (H(e["write"]), H(e["read"])) for e in g.get("epochs", [])}
        revs = RevocationSet()
        for rec in g.get("revocations", []):
            rec = rec["record"] if isinstance(rec, dict) else rec
            try: revs.insert(H(rec))
            except Refusal as e: yield f"group revocation {rec[:16]}…", False, f"record refused: {e}"
        now, skew = g["now"], g.get("skew", DEFAULT_SKEW)
        for t in g["tests"]:
            buf = H(t["chain"])
            try: cap, got = verify(buf, now, skew, epochs, revs), None
            except Refusal as e: cap, got = None, e
            if t["result"] == "valid":
                if got is not None: yield t["tcId"], False, f"{t['comment']}: refused {got}"; continue
                want = lower(t.get("capability"))
                diff = [k for k in sorted(set(cap) | set(want or {})) if want is None or cap.get(k) != want.get(k)]
                ok = not diff and encode_chain(decode_chain(buf)) == buf
                detail = "; ".join(f"{k}: got {cap.get(k)}, expected {(want or {}).get(k)}" for k in diff) or "not canonical"
                yield t["tcId"], ok, f"{t['comment']}: {detail}"
            else:
                ok, detail = same_refusal(t, got)
                yield t["tcId"], ok, f"{t['comment']}: {detail}"

def check_ladder(doc):
    rows = {"ladder": 0, "component": 0, "interface": 0}
    def visit(o):
        if isinstance(o, list):
            for v in o: yield from visit(v)
            return
        if not isinstance(o, dict): return
        o = snake(o)
        tc = o.get("tc_id", o.get("name", (o.get("component") or "?")[:16]))
        expect = o.get("result", "valid") != "invalid"
        if "root_seed" in o:
            rows["ladder"] += 1
            seed, e = H(o["root_seed"]), o["epoch"]
            ws = write_seed(seed, e); rs = read_seed(ws)
            got = {"channel": public(seed), "write_seed": ws, "read_seed": rs, "content_key": content_key(rs),
                   "write_auth": write_auth(ws), "read_auth": read_auth(rs)}
            diff = [k for k, v in got.items() if k in o and H(o[k]) != v]
            yield tc, (not diff) == expect, f"ladder row differs in {diff}"
        elif "node_seed" in o:
            rows["component"] += 1
            want = o.get("public", o.get("public_key", o.get("key")))
            ok = component_key(H(o["node_seed"]), H(o["component"])) == H(want)
            if "component_bytes" in o: ok = ok and blake3(H(o["component_bytes"])).digest() == H(o["component"])
            yield tc, ok == expect, "component id or key differs"
        elif "name" in o and "id" in o:
            rows["interface"] += 1
            yield tc, (interface_id(o["name"]) == H(o["id"])) == expect, f"interface id of {o['name']} differs"
        else:
            for v in o.values(): yield from visit(v)
    yield from visit({k: v for k, v in doc.items() if k not in ("notes", "header")})
    for k, n in rows.items():
        yield f"{k} rows", n > 0, f"no {k} rows found"

def check_revocations(doc):
    for g in doc["testGroups"]:
        for t in snake(g)["tests"]:
            try: accept_revocation(H(t["record"])); got = None
            except Refusal as e: got = e
            if t["result"] == "valid": yield t["tc_id"], got is None, f"{t['comment']}: refused {got}"
            else:
                ok, detail = same_refusal(t, got)
                yield t["tc_id"], ok, f"{t['comment']}: {detail}"

def check_sessions(doc):
    for g in doc["testGroups"]:
        for t in snake(g)["tests"]:
            msg = SESSION_SIG + H(t["handshake_hash"]) + H(t["head"])
            ok = verify_strict(H(t["holder"]), msg, H(t["proof"]))
            yield t["tc_id"], ok == (t["result"] == "valid"), f"{t['comment']}: proof {'verifies' if ok else 'fails'}"

# §4.1 examples and §16 worked example, which the vectors need not cover
def self_checks():
    def varint_of(hexs):
        try: return Reader(H(hexs)).varint()
        except Refusal as e: return e.decode
    for hexs, want in (("00", 0), ("7f", 127), ("8001", 128), ("8000", "NonCanonicalVarint"),
                       ("ff" * 9 + "01", U64), ("ff" * 9 + "02", "VarintOverflow"),
                       ("ff" * 9 + "00", "NonCanonicalVarint"), ("ff" * 11, "VarintOverflow"), ("ffff", "Truncated")):
        yield f"varint {hexs}", varint_of(hexs) == want, f"got {varint_of(hexs)}"
    try: decode_chain(bytes(MAX_CHAIN_LEN + 1)); got = None
    except Refusal as e: got = e.decode
    yield "synthetic TooLong", got == "TooLong", f"got {got}"
    yield "limits", MAX_REVOCATION_LEN == 1 + 3 * 32 + 10 + 64 and MAX_INVOCATION_LEN == 1 + 4 * 32 + 1 + 10 + 32 + 16 + 10 + 64, "§1.1"

    # §16: read under /photos until 1 780 345 600, from the root seed 01… to the seed 04… (tcId 1).
    owner, friend = bytes([1]) * 32, bytes([4]) * 32
    channel, holder, expires = public(owner), public(friend), 1_780_345_600
    header = bytes([1, 0]) + channel
    payload = bytes([0x19]) + holder + b"\x00" + enc_varint(expires) + b"\x01\x06photos"
    rid = root_id(header)
    sig = Ed25519PrivateKey.from_private_bytes(owner).sign(LINK_SIG + rid + payload)
    chain = header + b"\x01" + payload + sig
    lid = link_id(rid, payload, sig)
    yield "§16 keys", (channel.hex(), holder.hex()) == (
        "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
        "ca93ac1705187071d67b83c7ff0efe8108e8ec4530575d7726879333dbdabe7c"), "keys differ"
    yield "§16 ids", (len(chain), rid.hex(), lid.hex(), enc_varint(expires).hex()) == (146,
        "955e06d1d4c0647c3968769d1d8cd1f7346845bafe48853c36029da7327064b4",
        "8e5efd918254d032c3155360b2eb25c44f94146368c26c93f244976c23ccf97b", "80d6f7d006"), "ids differ"
    yield "§16 signature", sig.hex() == ("77764789a1e4d70016e43a40303752aa9e3637d7b5463ab8e891e63c8e548d4e"
                                          "82849ddc00d652928833d61a556b83bb02ac8a501b3062290b1cee6a90bd6a0a"), "differs"
    cap = verify(chain, 1_780_000_000, 60, {}, RevocationSet())
    want = {"root": {"kind": "channel", "subject": channel.hex(), "epoch": None}, "mode": "read",
            "path": [b"photos".hex()], "range": [0, U64], "window": [0, expires],
            "invoke": {"component": None, "interface": None, "methods": U64, "fuel": None, "rate": None},
            "depth": 0, "holder": holder.hex(), "links": [lid.hex()]}
    yield "§16 capability", cap == want, f"got {cap}"
    cover = [permits(cap, ("channel", "read", [b"photos", b"2026"], 5)), permits(cap, ("channel", "read", [b"photos2"], 0)),
             permits(cap, ("channel", "write", [b"photos"], 0))]
    yield "§16 coverage", cover == [None, "path", "mode"], f"got {cover}"
    times = []
    for now in (1_780_345_659, 1_780_345_660):
        try: verify(chain, now, 60, {}, RevocationSet()); times.append(None)
        except Refusal as e: times.append(e.name)
    yield "§16 expiry boundary", times == [None, "Expired"], f"got {times}"
    yield "§4.4 canonical", encode_chain(decode_chain(chain)) == chain, "re-encoding differs"
    # §12 layout: the longest invocation is exactly MAX_INVOCATION_LEN bytes; one more is TooLong.
    body = bytes([VERSION]) + bytes(128) + b"\x07" + enc_varint(U64) + bytes(48) + enc_varint(U64)
    longest = body + bytes(64)
    inv, signed_body, _ = decode_invocation(longest)
    try: decode_invocation(longest + b"\0"); got = None
    except Refusal as e: got = e.decode
    yield "§12 layout", (len(longest), signed_body, inv["method"], inv["fuel"], got) == (MAX_INVOCATION_LEN, body, 7, U64, "TooLong"), "differs"
    ident = (1).to_bytes(32, "little")  # §7: the identity is of small order; (identity, 0) fits any message
    yield "§7 small-order key", not valid_key(ident) and not verify_strict(ident, b"m", ident + bytes(32)), "accepted"
    p = 2**255 - 19  # §7 rule 2: y is reduced modulo p; y = p, p + 1 are of small order, y = p + 3 is not
    yield "§7 non-canonical keys", [valid_key((p + k).to_bytes(32, "little")) for k in (0, 1, 3)] == [False, False, True], "differs"

def main():
    run("cap", [("chains.json", check_chains), ("ladder.json", check_ladder), ("revocations.json", check_revocations),
                ("sessions.json", check_sessions), (None, self_checks)], "spec examples, strict Ed25519")

if __name__ == "__main__":
    main()
