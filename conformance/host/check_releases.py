#!/usr/bin/env python3
"""Independent checker for conformance/vectors/host/releases.json, written from spec/host.md §9.2
(and spec/cap.md §4.2, §5 for modes and paths).

Usage: python3 conformance/host/check_releases.py [VECTOR_DIR]
Needs nothing beyond the standard library. Decodes every release entry strictly, compares the
valid ones field by field (and re-encodes them to the same bytes), requires the invalid ones to
be refused for a fault their flags name, and runs self-checks on entries built by hand here.
Exits 1 if anything disagrees.
"""
import json, sys
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from report import run  # noqa: E402

# §2 Parameters
WORLD = "isocore:process/actor@0.1.0"
RELEASE_TAG, CHUNK_TAG = 0x01, 0x02
CHUNK_LEN, MAX_COMPONENT_LEN, MAX_RELEASE_LEN = 262_144, 16_777_216, 65_536
MAX_ITEMS, MAX_TEXT, MAX_NOTES = 64, 1024, 16 * 1024
# spec/cap.md §1.1, §4.2
MAX_PATH_COMPONENTS, MAX_PATH_COMPONENT_LEN = 16, 64
MODES = ["relay", "read", "write", "admin"]  # spec/cap.md §5.1: 0..=3


class Malformed(Exception):
    """A refusal (§10 `Malformed`); `fault` is the vector flag it falls under."""
    def __init__(self, fault, why):
        super().__init__(f"{fault}: {why}")
        self.fault, self.why = fault, why


# §9.2 Primitive reader: varints, strings, raw bytes
class Reader:
    def __init__(self, buf): self.buf, self.pos = buf, 0
    def take(self, n):
        if n > len(self.buf) - self.pos: raise Malformed("Truncated", f"{n} bytes wanted at {self.pos}")
        out = self.buf[self.pos:self.pos + n]; self.pos += n
        return out
    def u8(self): return self.take(1)[0]
    def varint(self, bits):
        """Unsigned LEB128, shortest form, at most ceil(bits / 7) bytes, value below 2^bits."""
        cap = -(-bits // 7)
        value = 0
        for i in range(cap):
            c = self.u8()
            value |= (c & 0x7F) << (7 * i)
            if c & 0x80 == 0:
                if i > 0 and c == 0: raise Malformed("Malleable", "varint not in its shortest form")
                if value >> bits: raise Malformed("Malleable", f"varint overflows {bits} bits")
                return value
        raise Malformed("Malleable", f"varint longer than {cap} bytes for a {bits}-bit field")
    def string(self):
        raw = self.take(self.varint(64))
        try: return raw.decode("utf-8")  # strict: no overlongs, no surrogates
        except UnicodeDecodeError: raise Malformed("Malleable", "invalid UTF-8") from None
    def strings(self): return [self.string() for _ in range(self.varint(64))]


# §9.2 The release encoding: the syntax first, then the bounds
def parse_request(r):
    kind = r.u8()
    if kind == 0x00:
        return {"kind": "channel", "channel": r.take(32).hex(), "mode": r.u8(), "path": r.string(), "reason": r.string()}
    if kind == 0x01:
        return {"kind": "invoke", "node": r.take(32).hex(), "interface": r.string(), "reason": r.string()}
    raise Malformed("Malleable", f"unknown request kind {kind}")

def valid_component(c):  # spec/cap.md §4.2
    return 1 <= len(c) <= MAX_PATH_COMPONENT_LEN and c not in (b".", b"..") and b"/" not in c and b"\0" not in c

def valid_path(text):  # spec/cap.md §5.2 text form: "/" (the root) or "/c1/.../cn"
    b = text.encode()
    if not b.startswith(b"/"): return False
    if b == b"/": return True
    parts = b[1:].split(b"/")
    return len(parts) <= MAX_PATH_COMPONENTS and all(valid_component(c) for c in parts)

def sorted_by_bytes(items):  # strictly ascending: no duplicates (§9.2)
    enc = [s.encode() for s in items]
    return all(a < b for a, b in zip(enc, enc[1:]))

def check_bounds(rel):
    def text(s, what, bound=MAX_TEXT):
        if len(s.encode()) > bound: raise Malformed("Bounds", f"{what} is {len(s.encode())} bytes, over {bound}")
    text(rel["world"], "world")
    for name in ("imports", "exports"):
        items = rel[name]
        if len(items) > MAX_ITEMS: raise Malformed("Bounds", f"{len(items)} {name}, over {MAX_ITEMS}")
        for s in items: text(s, f"an item of {name}")
        if not sorted_by_bytes(items): raise Malformed("Canonical", f"{name} not sorted")
    if len(rel["requests"]) > MAX_ITEMS: raise Malformed("Bounds", f"{len(rel['requests'])} requests, over {MAX_ITEMS}")
    for n, q in enumerate(rel["requests"]):
        if q["kind"] == "channel":
            if q["mode"] > 3: raise Malformed("Bounds", f"request {n}: mode {q['mode']}")
            text(q["path"], f"request {n}: path")
            if not valid_path(q["path"]): raise Malformed("Bounds", f"request {n}: invalid path {q['path']!r}")
        else:
            text(q["interface"], f"request {n}: interface")
        text(q["reason"], f"request {n}: reason")
    text(rel["notes"], "notes", MAX_NOTES)
    if not 1 <= rel["size"] <= MAX_COMPONENT_LEN: raise Malformed("Bounds", f"size {rel['size']}")

def decode_release(entry):
    """Returns the release as the vectors' JSON shows it, or raises Malformed."""
    if len(entry) > MAX_RELEASE_LEN: raise Malformed("Bounds", f"entry of {len(entry)} bytes")
    r = Reader(entry)
    tag = r.u8()
    if tag != RELEASE_TAG: raise Malformed("Tag", f"tag {tag:#04x}")
    rel = {"version": [r.varint(32), r.varint(32), r.varint(32)],
           "component": r.take(32).hex(),
           "size": r.varint(64),
           "world": r.string(),
           "imports": r.strings(),
           "exports": r.strings(),
           "requests": [parse_request(r) for _ in range(r.varint(64))]}
    rel["limits"] = {"memory": r.varint(64), "processes": r.varint(32)}
    rel["notes"] = r.string()
    if r.pos != len(entry): raise Malformed("Malleable", f"{len(entry) - r.pos} bytes after the last field")
    check_bounds(rel)
    return rel


# An encoder of our own, for the self-checks and the re-encoding check
def enc_varint(v):
    out = bytearray()
    while v >= 0x80: out.append(v & 0x7F | 0x80); v >>= 7
    return bytes(out + bytes([v]))
def enc_string(s): b = s.encode() if isinstance(s, str) else s; return enc_varint(len(b)) + b
def enc_list(items, f): return enc_varint(len(items)) + b"".join(f(x) for x in items)

def enc_request(q):
    if q["kind"] == "channel":
        return b"\x00" + bytes.fromhex(q["channel"]) + bytes([q["mode"]]) + enc_string(q["path"]) + enc_string(q["reason"])
    return b"\x01" + bytes.fromhex(q["node"]) + enc_string(q["interface"]) + enc_string(q["reason"])

def encode_release(rel):
    return (bytes([RELEASE_TAG]) + b"".join(enc_varint(v) for v in rel["version"]) + bytes.fromhex(rel["component"])
            + enc_varint(rel["size"]) + enc_string(rel["world"]) + enc_list(rel["imports"], enc_string)
            + enc_list(rel["exports"], enc_string) + enc_list(rel["requests"], enc_request)
            + enc_varint(rel["limits"]["memory"]) + enc_varint(rel["limits"]["processes"]) + enc_string(rel["notes"]))


# Vector checks: each yields (id, ok, detail)
def refusal(entry):
    try: return decode_release(entry), None
    except Malformed as e: return None, e

def check_releases(doc):
    known = set(doc.get("notes", {}))
    ids = [t.get("tcId") for g in doc["testGroups"] for t in g["tests"]]
    yield "tcIds", len(set(ids)) == len(ids), f"repeated tcIds in {ids}"
    for g in doc["testGroups"]:
        if g.get("type", "ReleaseDecode") != "ReleaseDecode":
            yield f"group {g.get('type')}", False, "unknown group type"; continue
        for t in g["tests"]:
            tc, comment, flags = t["tcId"], t.get("comment", ""), t.get("flags", [])
            unknown = [f for f in flags if f not in known]
            if unknown: yield f"{tc} flags", False, f"{comment}: flags {unknown} not described in notes"
            entry = bytes.fromhex(t["entry"])
            got, err = refusal(entry)
            if t["result"] == "valid":
                if err: yield tc, False, f"{comment}: refused ({err})"; continue
                want = t.get("release") or {}
                diff = [k for k in sorted(set(got) | set(want)) if got.get(k) != want.get(k)]
                detail = "; ".join(f"{k}: got {got.get(k)!r}, expected {want.get(k)!r}" for k in diff)
                yield tc, not diff, f"{comment}: {detail}"
                again = encode_release(got)
                yield f"{tc} re-encode", again == entry, f"{comment}: re-encoding gives {again.hex()}"
            elif t["result"] == "invalid":
                if err is None: yield tc, False, f"{comment}: accepted as {got}"; continue
                yield tc, not flags or err.fault in flags, f"{comment}: refused for {err}, flags {flags}"
            else:
                yield tc, False, f"{comment}: result {t['result']!r}"


# Self-checks on entries built by hand
def sample(**over):
    rel = {"version": [1, 0, 0], "component": "ab" * 32, "size": 1, "world": WORLD,
           "imports": ["isocore:process/clock@0.1.0", "isocore:process/log@0.1.0"], "exports": [],
           "requests": [{"kind": "channel", "channel": "11" * 32, "mode": 3, "path": "/", "reason": ""},
                        {"kind": "invoke", "node": "22" * 32, "interface": "x:y/z@1.0.0", "reason": "é"}],
           "limits": {"memory": 1 << 22, "processes": 8}, "notes": ""}
    rel.update(over)
    return rel

def channel(path, mode=1, reason=""):
    return {"kind": "channel", "channel": "33" * 32, "mode": mode, "path": path, "reason": reason}

def world_at(rel):  # offset of the world string's length in an entry
    return 1 + sum(len(enc_varint(v)) for v in rel["version"]) + 32 + len(enc_varint(rel["size"]))

def self_checks():
    def outcome(entry):
        got, err = refusal(entry)
        return err.fault if err else got
    def accepts(name, rel):
        entry = encode_release(rel)
        got = outcome(entry)
        return name, got == rel and encode_release(got) == entry, f"got {got}"
    def refuses(name, entry, fault):
        if isinstance(entry, dict): entry = encode_release(entry)
        got = outcome(entry)
        return name, got == fault, f"got {got}, expected {fault}"

    # varints (§9.2): shortest form, 5 bytes / 32 bits, 10 bytes / 64 bits
    def varint(hexs, bits):
        try:
            r = Reader(bytes.fromhex(hexs)); v = r.varint(bits)
            return v if r.pos == len(r.buf) else "left over"
        except Malformed as e: return e.why.split(" ")[1] if e.fault == "Malleable" else e.fault
    for hexs, bits, want in (("00", 32, 0), ("7f", 32, 127), ("8001", 32, 128), ("8000", 32, "not"),
                             ("ffffffff0f", 32, 2**32 - 1), ("ffffffff10", 32, "overflows"),
                             ("8080808000", 32, "not"), ("ffffffff8f", 32, "longer"), ("8080", 32, "Truncated"),
                             ("ffffffffffffffffff01", 64, 2**64 - 1), ("ffffffffffffffffff02", 64, "overflows"),
                             ("ffffffffffffffffff00", 64, "not"), ("ff" * 10, 64, "longer"), ("", 64, "Truncated")):
        yield f"varint{bits} {hexs or 'empty'}", varint(hexs, bits) == want, f"got {varint(hexs, bits)}"
    for v in (0, 1, 127, 128, 300, 2**32 - 1, 2**63, 2**64 - 1):
        yield f"varint {v} round trip", Reader(enc_varint(v)).varint(64) == v, "differs"

    # A known encoding, spelled out byte by byte from the §9.2 grammar
    rel = sample(version=[1, 300, 0], size=MAX_COMPONENT_LEN, imports=["a"], exports=["b", "c"],
                 requests=[channel("/x/y", 2, "r")], limits={"memory": 0, "processes": 2**32 - 1}, notes="n")
    spelled = (b"\x01" + b"\x01\xac\x02\x00" + bytes([0xab] * 32) + b"\x80\x80\x80\x08"
               + bytes([len(WORLD)]) + WORLD.encode() + b"\x01\x01a" + b"\x02\x01b\x01c"
               + b"\x01\x00" + bytes([0x33] * 32) + b"\x02\x04/x/y\x01r" + b"\x00\xff\xff\xff\xff\x0f\x01n")
    yield "spelled-out entry encodes", encode_release(rel) == spelled, encode_release(rel).hex()
    yield "spelled-out entry decodes", outcome(spelled) == rel, f"got {outcome(spelled)}"

    yield accepts("sample", sample())
    base = encode_release(sample())
    cuts = [n for n in range(len(base)) if outcome(base[:n]) != "Truncated"]
    yield "every prefix is Truncated", not cuts, f"prefixes of length {cuts} are not"
    yield refuses("trailing byte", base + b"\0", "Malleable")
    yield refuses("chunk tag", bytes([CHUNK_TAG]) + base[1:], "Tag")
    yield refuses("tag 0", b"\x00" + base[1:], "Tag")
    yield refuses("overlong major", base[:1] + b"\x81\x00" + base[2:], "Malleable")
    yield refuses("major over 32 bits", base[:1] + b"\x80\x80\x80\x80\x10" + base[2:], "Malleable")
    yield accepts("largest numbers", sample(version=[2**32 - 1] * 3, limits={"memory": 2**64 - 1, "processes": 2**32 - 1}))
    big = encode_release(sample(limits={"memory": 0, "processes": 0}))
    yield refuses("processes over 32 bits", big[:-2] + b"\x80\x80\x80\x80\x10" + big[-1:], "Malleable")
    yield refuses("memory overlong", big[:-3] + b"\x80\x00" + big[-2:], "Malleable")

    # request kinds and modes (spec/cap.md §5.1)
    k = base.index(bytes.fromhex("11" * 32)) - 1
    yield "kind offset", base[k] == 0, "the first request's kind byte is not where expected"
    for kind, fault in ((2, "Malleable"), (0x80, "Malleable"), (0xFF, "Malleable")):
        yield refuses(f"request kind {kind:#x}", base[:k] + bytes([kind]) + base[k + 1:], fault)
    for mode in range(4): yield accepts(f"mode {mode}", sample(requests=[channel("/a", mode)]))
    yield refuses("mode 4", sample(requests=[channel("/a", 4)]), "Bounds")
    yield refuses("mode 255", sample(requests=[channel("/a", 255)]), "Bounds")

    # paths (spec/cap.md §4.2, §5.2)
    c64, c63 = "p" * 64, "q" * 63
    for path in ("/", "/a", "/a/b", "/...", "/a.b", "/" + c64, "/" + "/".join(["c"] * 16),
                 "/" + "/".join([c63] * 16), "/é"):
        yield accepts(f"path {path[:24]!r}", sample(requests=[channel(path)]))
    for path in ("", "a", "a/b", "//", "/a/", "/a//b", "/.", "/..", "/a/../b", "/a\0b", "/" + "p" * 65,
                 "/" + "/".join(["c"] * 17), "/" + "/".join([c64] * 16), " /a"):
        yield refuses(f"path {path[:24]!r}", sample(requests=[channel(path)]), "Bounds")
    yield "longest path is 1040 bytes", len("/" + "/".join([c64] * 16)) == 1040 > MAX_TEXT, "arithmetic"

    # sorting: by bytes, equal neighbours allowed
    yield accepts("imports sorted by bytes", sample(imports=["B", "a", "é"]))
    yield refuses("imports with a duplicate", sample(imports=["a", "a"]), "Canonical")
    yield accepts("exports sorted by bytes", sample(exports=["z", "\u00e9", "\uffff", "\U0001f600"]))
    yield refuses("imports unsorted", sample(imports=["b", "a"]), "Canonical")
    yield refuses("exports unsorted", sample(exports=["ab", "a"]), "Canonical")

    # strings: UTF-8 and bounds
    notes_at = len(base) - 1
    yield "notes offset", base[notes_at] == 0, "the empty notes are not last"
    for bad in (b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"):
        yield refuses(f"notes {bad.hex()}", base[:notes_at] + enc_string(bad), "Malleable")
    w = world_at(sample())
    yield refuses("world of invalid UTF-8", base[:w] + enc_string(b"\xff" + WORLD.encode()[1:]) + base[w + 1 + len(WORLD):], "Malleable")
    for field in ("world", "notes"):
        bound = MAX_NOTES if field == "notes" else MAX_TEXT
        yield accepts(f"{field} at its bound", sample(**{field: "w" * bound}))
        yield refuses(f"{field} over its bound", sample(**{field: "w" * (bound + 1)}), "Bounds")
    yield accepts("world other than WORLD", sample(world=""))  # §9.2: decoding does not check the value
    for name, make in (("import", lambda s: sample(imports=[s])), ("export", lambda s: sample(exports=[s])),
                       ("interface", lambda s: sample(requests=[dict(sample()["requests"][1], interface=s)])),
                       ("reason", lambda s: sample(requests=[channel("/", reason=s)]))):
        yield accepts(f"{name} at MAX_TEXT", make("é" * (MAX_TEXT // 2)))
        yield refuses(f"{name} over MAX_TEXT", make("é" * (MAX_TEXT // 2) + "x"), "Bounds")

    # lists
    many = [f"i{n:02}" for n in range(MAX_ITEMS + 1)]
    yield accepts("MAX_ITEMS imports", sample(imports=many[:-1]))
    yield refuses("MAX_ITEMS + 1 imports", sample(imports=many), "Bounds")
    yield refuses("MAX_ITEMS + 1 exports", sample(exports=many), "Bounds")
    yield accepts("MAX_ITEMS requests", sample(requests=[channel("/")] * MAX_ITEMS))
    yield refuses("MAX_ITEMS + 1 requests", sample(requests=[channel("/")] * (MAX_ITEMS + 1)), "Bounds")
    e = world_at(sample()) + len(enc_string(WORLD)) + len(enc_list(sample()["imports"], enc_string))
    yield "exports offset", base[e] == 0 and base[e + 1] == 2, "the exports count is not where expected"
    yield refuses("a count beyond the entry", base[:e] + b"\xff\xff\xff\xff\x0f" + base[e + 1:], "Truncated")

    # size (§9.2) and the whole entry (§9.1)
    yield accepts("size 1", sample(size=1))
    yield accepts("size MAX_COMPONENT_LEN", sample(size=MAX_COMPONENT_LEN))
    yield refuses("size 0", sample(size=0), "Bounds")
    yield refuses("size MAX_COMPONENT_LEN + 1", sample(size=MAX_COMPONENT_LEN + 1), "Bounds")
    yield refuses("size 2^64 - 1", sample(size=2**64 - 1), "Bounds")
    full = sample(requests=[channel("/", reason="r" * MAX_TEXT)] * 48, notes="")  # 48 · 1062 bytes, notes the rest
    fill = MAX_RELEASE_LEN - len(encode_release(full))
    full["notes"] = "n" * fill
    fill -= len(encode_release(full)) - MAX_RELEASE_LEN
    full["notes"] = "n" * fill
    yield "longest entry is MAX_RELEASE_LEN", len(encode_release(full)) == MAX_RELEASE_LEN and 0 < fill <= MAX_NOTES, f"{len(encode_release(full))}"
    yield accepts("entry of MAX_RELEASE_LEN bytes", full)
    yield refuses("entry of MAX_RELEASE_LEN + 1 bytes", dict(full, notes="n" * (fill + 1)), "Bounds")


def main():
    run("host", [("releases.json", check_releases), (None, self_checks)], "entries built by hand")


if __name__ == "__main__":
    main()
