#!/usr/bin/env python3
"""Independent checker for conformance/vectors/log/*.json, written from spec/log.md.

Usage: python3 conformance/log/check_vectors.py [VECTOR_DIR]
Needs: pip install blake3 cryptography
"""
import json, sys
from functools import lru_cache
from pathlib import Path
from blake3 import blake3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# §1.1 Parameters
MAX_ENTRY_LEN, MAX_LENGTH, MAX_MESSAGE_LEN = 1 << 20, 1 << 62, 4 << 20
MAX_ENTRIES_PER_MESSAGE, MAX_PROOF_NODES, MAX_FORK_ROOTS = 65536, 192, 64
MAX_REDIRECT_PEERS, MAX_CONTACT_LEN = 16, 64

# §2 Hashing
def derive_key(context: str, material: bytes = b"") -> bytes:
    return blake3(material, derive_key_context=context).digest()

CONTEXTS = {"leaf": "isocore/log/v1/leaf", "parent": "isocore/log/v1/parent", "root": "isocore/log/v1/root"}
K = {name: derive_key(ctx) for name, ctx in CONTEXTS.items()}
def leaf(entry): return blake3(entry, key=K["leaf"]).digest()
def parent(left, right): return blake3(left + right, key=K["parent"]).digest()
def root_hash(n, roots): return blake3(n.to_bytes(8, "little") + b"".join(roots), key=K["root"]).digest()

# §3 Tree layout (flat-tree order)
def index(d, o): return o * (1 << (d + 1)) + (1 << d) - 1
def depth(x):
    d = 0
    while (x >> d) & 1: d += 1
    return d
def span(x):
    d = depth(x); o = x >> (d + 1)
    return o << d, (o + 1) << d
def children(x):
    h = 1 << (depth(x) - 1)
    return x - h, x + h
def roots(n):  # one complete subtree per set bit of n, largest first (= ascending index)
    out, s = [], 0
    for b in range(63, -1, -1):
        if (n >> b) & 1:
            out.append(index(b, s >> b)); s += 1 << b
    return out

# §10 Entry rule of every vector feed
def entry(i): return bytes((i + 3 * j) % 251 for j in range((i % 7) * 11))
@lru_cache(maxsize=None)
def feed_node(x):  # hash of complete node x of the vector feed
    if depth(x) == 0: return leaf(entry(x // 2))
    return parent(*map(feed_node, children(x)))

# §4 Signed heads, with Ed25519 strict verification
SIGN_CONTEXT = b"isocore/log/v1/signed-head\x00"
def signable(channel, writer, n, root):
    return SIGN_CONTEXT + channel + writer + n.to_bytes(8, "little") + root

# verify_strict (§4: A and R not of small order, R canonical, s < L, then the Ed25519 equation)
# lives in conformance/ed25519_strict.py, shared with the other checkers.
sys.dont_write_bytecode = True  # keep the shared module from leaving __pycache__ in the tree
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ed25519_strict import verify_strict  # noqa: E402

# §5 Proofs
class ProofError(Exception): pass

def walk(n, m, a, entries, supplied, known=None):
    """§5.1 walk, §5.3 steps 1-3. Returns (values of roots(m), {index: value of every node met})."""
    b = a + len(entries)
    if not (a <= b <= m and n <= m <= MAX_LENGTH): raise ProofError("Malformed")
    vals, todo = {}, list(supplied)
    def compute(x):
        s, _ = span(x)
        v = leaf(entries[s - a]) if depth(x) == 0 else parent(*map(compute, children(x)))
        vals[x] = v; return v
    def visit(x, is_root):
        s, e = span(x)
        disjoint = a == b or e <= a or b <= s
        if a < b and a <= s and e <= b: return compute(x)                    # compute
        if disjoint and n == m and is_root:                                   # known
            if known is None or x not in known: raise ProofError("Unusable")
            v = known[x]
        elif disjoint and (n == m or not s < n < e):                          # supply
            if not todo: raise ProofError("TooFewNodes")
            v = todo.pop(0)
        else: v = parent(*(visit(c, False) for c in children(x)))            # descend
        vals[x] = v; return v
    rts = [visit(x, True) for x in roots(m)]
    if todo: raise ProofError("TooManyNodes")
    return rts, vals

def verify_proof(channel, writer, head, n, base_roots, a, entries, nodes):
    """§5.3 for a Data-style proof; base_roots maps index -> hash for roots(n). Raises ProofError."""
    m, root, sig = head
    rts, vals = walk(n, m, a, entries, nodes, base_roots if n == m else None)
    if n == m:                                                                # step 4
        if any(v != base_roots[x] for x, v in zip(roots(m), rts)): raise ProofError("RootMismatch")
        return vals
    if root_hash(m, rts) != root: raise ProofError("RootMismatch")            # step 5
    if not verify_strict(writer, signable(channel, writer, m, root), sig): raise ProofError("BadSignature")
    if any(vals[x] != base_roots[x] for x in roots(n)): raise ProofError("Inconsistent")  # step 6, §5.4
    return vals

def verify_fork(msg):
    """§5.4 fork proof validity. Raises ProofError."""
    ch, wr, first, second = msg["channel"], msg["writer"], msg["first"], msg["second"]
    fr, sn = msg["first_roots"], msg["second_nodes"]
    n, m = first[0], second[0]
    if not n <= m <= MAX_LENGTH: raise ProofError("Misordered")
    if n == m:
        if fr or sn: raise ProofError("Malformed")
        if first[1] == second[1]: raise ProofError("Consistent")
    else:
        if len(fr) != len(roots(n)) or root_hash(n, fr) != first[1]: raise ProofError("BadFirstRoots")
        rts, vals = walk(n, m, n, [], sn)
        if root_hash(m, rts) != second[1]: raise ProofError("BadNodes")
        if all(vals[x] == r for x, r in zip(roots(n), fr)): raise ProofError("Consistent")
    for h in (first, second):
        if not verify_strict(wr, signable(ch, wr, h[0], h[1]), h[2]): raise ProofError("BadSignature")

# §7 Message encoding (postcard rules)
class DecodeError(Exception): pass

SCHEMA = {  # tag: (name, [(field, kind)])
    0: ("Have", [("head", "head"), ("contiguous", "u64")]),
    1: ("Request", [("id", "u64"), ("base", "u64"), ("start", "u64"), ("end", "u64"), ("upgrade", "bool")]),
    2: ("Data", [("id", "u64"), ("base", "u64"), ("head", "opt_head"), ("contiguous", "u64"),
                 ("start", "u64"), ("entries", "bytes_list"), ("nodes", "hash_list")]),
    3: ("NoData", [("id", "u64")]), 4: ("Subscribe", []), 5: ("Unsubscribe", []), 6: ("Cancel", [("id", "u64")]),
    7: ("Fork", [("channel", "h32"), ("writer", "h32"), ("first", "head"), ("second", "head"),
                 ("first_roots", "hash_list"), ("second_nodes", "hash_list")]),
    8: ("Redirect", [("peers", "bytes_list")]),
}

class Reader:
    def __init__(self, buf): self.buf, self.pos = buf, 0
    def take(self, k):
        if k > len(self.buf) - self.pos: raise DecodeError("Malformed")       # truncated
        out = self.buf[self.pos:self.pos + k]; self.pos += k
        return out
    def u64(self):
        v = 0
        for i in range(10):                                                   # at most 10 bytes
            c = self.take(1)[0]; v |= (c & 0x7F) << (7 * i)
            if c < 0x80:
                if v >> 64: raise DecodeError("Malformed")                   # over 64 bits
                return v
        raise DecodeError("Malformed")
    def count(self, min_size):  # list lengths are checked against the remaining input first
        k = self.u64()
        if k * min_size > len(self.buf) - self.pos: raise DecodeError("Malformed")
        return k
    def read(self, kind):
        if kind == "u64": return self.u64()
        if kind == "bool":
            c = self.take(1)[0]
            if c > 1: raise DecodeError("Malformed")
            return c == 1
        if kind == "h32": return self.take(32)
        if kind == "head": return (self.u64(), self.take(32), self.take(64))
        if kind == "opt_head":
            return self.read("head") if self.read("bool") else None
        if kind == "bytes_list": return [self.take(self.u64()) for _ in range(self.count(1))]
        if kind == "hash_list": return [self.take(32) for _ in range(self.count(32))]
        raise AssertionError(kind)

def enc_u64(v):
    out = bytearray()
    while v >= 0x80: out.append(v & 0x7F | 0x80); v >>= 7
    return bytes(out + bytes([v]))

def enc(kind, v):
    if kind == "u64": return enc_u64(v)
    if kind == "bool": return bytes([v])
    if kind == "h32": return v
    if kind == "head": return enc_u64(v[0]) + v[1] + v[2]
    if kind == "opt_head": return b"\x00" if v is None else b"\x01" + enc("head", v)
    if kind == "bytes_list": return enc_u64(len(v)) + b"".join(enc_u64(len(e)) + e for e in v)
    if kind == "hash_list": return enc_u64(len(v)) + b"".join(v)
    raise AssertionError(kind)

def encode(msg):
    tag = next(t for t, (name, _) in SCHEMA.items() if name == msg["type"])
    return enc_u64(tag) + b"".join(enc(kind, msg[f]) for f, kind in SCHEMA[tag][1])

def in_bounds(msg):
    t = msg["type"]
    if t == "Have": return msg["head"][0] <= MAX_LENGTH and msg["contiguous"] <= msg["head"][0]
    if t == "Request": return msg["start"] <= msg["end"] <= MAX_LENGTH and msg["base"] <= MAX_LENGTH
    if t == "Data":
        head, ents = msg["head"], msg["entries"]
        target = head[0] if head is not None else msg["base"]
        return (len(ents) <= MAX_ENTRIES_PER_MESSAGE and all(len(e) <= MAX_ENTRY_LEN for e in ents)
                and len(msg["nodes"]) <= MAX_PROOF_NODES and msg["contiguous"] <= MAX_LENGTH
                and target <= MAX_LENGTH and (head is None or head[0] > msg["base"])
                and msg["start"] + len(ents) <= target)
    if t == "Fork": return len(msg["first_roots"]) <= MAX_FORK_ROOTS and len(msg["second_nodes"]) <= MAX_PROOF_NODES
    if t == "Redirect":
        return len(msg["peers"]) <= MAX_REDIRECT_PEERS and all(1 <= len(p) <= MAX_CONTACT_LEN for p in msg["peers"])
    return True

def decode(buf):
    """§7 strict decoder; refusals in the spec's order."""
    if len(buf) > MAX_MESSAGE_LEN: raise DecodeError("TooLong")
    r = Reader(buf)
    tag = r.u64()
    if tag not in SCHEMA: raise DecodeError("Malformed")
    name, fields = SCHEMA[tag]
    msg = {"type": name}
    for f, kind in fields: msg[f] = r.read(kind)
    if r.pos != len(buf): raise DecodeError("TrailingBytes")
    if encode(msg) != buf: raise DecodeError("NonCanonical")
    if not in_bounds(msg): raise DecodeError("OutOfBounds")
    return msg

# Vector checks: each yields (tcId, ok, detail)
H = bytes.fromhex
def head_of(h): return (h["length"], H(h["root"]), H(h["signature"]))

def check_tree(doc):
    for g in doc["testGroups"]:
        for name, k in g.get("keys", {}).items():  # §2 keys from their contexts
            ok = k["context"] == CONTEXTS[name] and H(k["key"]) == K[name]
            yield f"key {name}", ok, "derive_key mismatch"
        for t in g["tests"]:
            if "leafHash" in t: ok = leaf(H(t["input"])) == H(t["leafHash"])
            elif "parentHash" in t: ok = parent(H(t["left"]), H(t["right"])) == H(t["parentHash"])
            else:
                n, want = t["length"], t["roots"]
                idx = roots(n)
                ok = ([r["index"] for r in want] == idx
                      and [H(r["hash"]) for r in want] == [feed_node(x) for x in idx]
                      and root_hash(n, [feed_node(x) for x in idx]) == H(t["rootHash"]))
            yield t["tcId"], ok == (t["result"] == "valid"), t["comment"]

SEED_KEYS = {Ed25519PrivateKey.from_private_bytes(bytes([b]) * 32).public_key()
             .public_bytes(Encoding.Raw, PublicFormat.Raw) for b in range(256)}

def check_signed_head(doc):
    for g in doc["testGroups"]:
        yield "context", H(g["context"]) == SIGN_CONTEXT, "signing context differs from §4"
        # §10: seeds are one repeated byte, except the deliberately small-order key.
        writers = {H(t["writer"]) for t in g["tests"] if "SmallOrderKey" not in t["flags"]}
        yield "writer seeds", writers <= SEED_KEYS, "a writer key is not from a repeated-byte seed"
        for t in g["tests"]:
            ch, wr, n, root = H(t["channel"]), H(t["writer"]), t["length"], H(t["root"])
            msg = signable(ch, wr, n, root)
            if "signable" in t and (H(t["signable"]) != msg or len(msg) != 131):
                yield t["tcId"], False, "signable differs"; continue
            ok = verify_strict(wr, msg, H(t["signature"]))
            if ok and root != root_hash(n, [feed_node(x) for x in roots(n)]): ok = False  # §10 entry rule
            yield t["tcId"], ok == (t["result"] == "valid"), t["comment"]

PROOF_REASON = {"TruncatedProof": "TooFewNodes", "ExtraNode": "TooManyNodes", "ForgedSignature": "BadSignature",
                "CrossFeed": "BadSignature", "TamperedEntry": "RootMismatch", "WrongSibling": "RootMismatch"}

def check_proofs(doc):
    for g in doc["testGroups"]:
        for t in g["tests"]:
            held = "heldLength" in t  # a range proof (n = m) against roots the verifier holds
            n = t["heldLength"] if held else t.get("base", g.get("base"))
            base = {r["index"]: H(r["hash"]) for r in t.get("heldRoots" if held else "baseRoots", [])}
            if sorted(base) != roots(n):
                yield t["tcId"], False, "baseRoots indices are not roots(base)"; continue
            head = (n, None, None) if held else head_of(t["head"])
            channel, writer = (None, None) if held else (H(t["channel"]), H(t["writer"]))
            try:
                verify_proof(channel, writer, head, n, base,
                             t["start"], [H(e) for e in t["entries"]], [H(x) for x in t["nodes"]])
                got = None
            except ProofError as e: got = str(e)
            want = {PROOF_REASON[f] for f in t["flags"] if f in PROOF_REASON}
            ok = got is None if t["result"] == "valid" else got is not None and (not want or got in want)
            yield t["tcId"], ok, f"{t['comment']}: got {got or 'valid'}"

def check_forks(doc):
    for g in doc["testGroups"]:
        for t in g["tests"]:
            try:
                msg = decode(H(t["encoded"]))
                if msg["type"] != "Fork": raise DecodeError("not a Fork")
                verify_fork(msg); got = None
            except (DecodeError, ProofError) as e: got = str(e)
            ok = got is None if t["result"] == "valid" else got in t["flags"]
            yield t["tcId"], ok, f"{t['comment']}: got {got or 'valid'}"

def check_messages(doc):
    for g in doc["testGroups"]:
        yield "limits", (g["maxEntryLen"], g["maxMessageLen"]) == (MAX_ENTRY_LEN, MAX_MESSAGE_LEN), "limits differ"
        for t in g["tests"]:
            buf = H(t["encoded"])
            try: got, msg = None, decode(buf)
            except DecodeError as e: got = str(e)
            if t["result"] == "valid": ok = got is None and encode(msg) == buf
            else: ok = got is not None and [got] == t["flags"]
            yield t["tcId"], ok, f"{t['comment']}: got {got or 'valid'}"
    try: decode(b"\x04" * (MAX_MESSAGE_LEN + 1)); got = None  # no vector covers TooLong
    except DecodeError as e: got = str(e)
    yield "synthetic TooLong", got == "TooLong", f"got {got}"
    full = enc_u64(8) + enc("bytes_list", [bytes([i]) * MAX_CONTACT_LEN for i in range(MAX_REDIRECT_PEERS)])
    try: got = decode(full)["type"]  # §7: the largest Redirect within bounds
    except DecodeError as e: got = str(e)
    yield "synthetic full Redirect", got == "Redirect", f"got {got}"

def self_checks():  # §3 examples and §4 strictness cases that the vectors do not cover
    yield "roots(7)", roots(7) == [3, 9, 12], "§3 example"
    yield "span(3)", span(3) == (0, 4) and children(3) == (1, 5), "§3 example"
    ident = (1).to_bytes(32, "little")  # identity point: small order; (R, s) = (identity, 0) fits any message
    yield "small-order key", not verify_strict(ident, b"m", ident + bytes(32)), "accepted"

def main():
    vdir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "vectors" / "log"
    failed = 0
    files = [("tree.json", check_tree), ("signed_head.json", check_signed_head), ("proofs.json", check_proofs),
             ("fork_proofs.json", check_forks), ("messages.json", check_messages), (None, self_checks)]
    for name, fn in files:
        doc = json.loads((vdir / name).read_text()) if name else None
        results = list(fn(doc) if name else fn())
        bad = [(i, d) for i, ok, d in results if not ok]
        tests = sum(len(g["tests"]) for g in doc["testGroups"]) if name else 0
        extra = f", {len(results) - tests} extra checks" if name else "spec examples, strict Ed25519"
        if name and tests != doc["numberOfTests"]: bad.append(("numberOfTests", "count differs"))
        print(f"{name or 'self-checks'}: {len(results) - len(bad)} passed, {len(bad)} failed ({f'{tests} vectors' if name else ''}{extra})")
        for i, d in bad: print(f"  FAIL {i}: {d}")
        failed += len(bad)
    sys.exit(1 if failed else 0)

if __name__ == "__main__":
    main()
