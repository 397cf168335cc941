#!/usr/bin/env python3
"""Independent checker for conformance/vectors/host/calls.json, written from spec/host.md §9.6
(and spec/cap.md §4.1 for varints).

Usage: python3 conformance/host/check_calls.py [VECTOR_DIR]
Needs nothing beyond the standard library. Decodes every call payload strictly, compares the
valid ones field by field (and re-encodes them to the same bytes), requires the invalid ones to
be refused for the fault their flags name, checks every method text, and runs self-checks on
payloads and methods built by hand here. Exits 1 if anything disagrees.
"""
import sys
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from report import run  # noqa: E402

# spec/host.md §2 Parameters (MAX_CHAIN_LEN from spec/cap.md §1.1)
MAX_CHAIN_LEN = 4096
PROOF_LEN = 64
MAX_METHOD = 255
VARINT_MAX_BYTES = 10  # spec/cap.md §4.1


class Refused(Exception):
    """A call refused as MALFORMED (§9.6); `fault` is the vector flag it falls under."""
    def __init__(self, fault, why):
        super().__init__(f"{fault}: {why}")
        self.fault, self.why = fault, why


# §9.6 Decoding, step 1: the method text
def parse_method(text):
    """One to three ASCII digits, no leading zero unless "0" alone, value at most 255."""
    if not 1 <= len(text) <= 3 or any(c not in "0123456789" for c in text):
        raise Refused("BadMethod", f"{text!r} is not one to three ASCII digits")
    if len(text) > 1 and text[0] == "0":
        raise Refused("BadMethod", f"{text!r} has a leading zero")
    value = 0
    for c in text: value = value * 10 + (ord(c) - ord("0"))
    if value > MAX_METHOD: raise Refused("BadMethod", f"{text!r} is above {MAX_METHOD}")
    return value

def method_text(index):
    return str(index)


# §9.6 Decoding, steps 2-6: the payload
def read_varint(buf, pos):
    """spec/cap.md §4.1, byte by byte: end of input, then a 10th byte above 0x01, then a final
    0x00 that is not the first byte. Returns (value, position after it)."""
    value = 0
    for i in range(VARINT_MAX_BYTES):
        if pos + i >= len(buf): raise Refused("Truncated", f"varint at {pos} runs past the end")
        b = buf[pos + i]
        if i == VARINT_MAX_BYTES - 1 and b > 0x01:
            raise Refused("NonCanonical", f"varint at {pos}: 10th byte {b:#04x} (over 64 bits)")
        value |= (b & 0x7F) << (7 * i)
        if b & 0x80 == 0:
            if i > 0 and b == 0: raise Refused("NonCanonical", f"varint at {pos} not in its shortest form")
            return value, pos + i + 1
    raise AssertionError("unreachable: the 10th byte either ends the varint or is refused")

def decode_payload(payload):
    """Returns {chain, proof, fuel, args} as the vectors' JSON shows them, or raises Refused."""
    chain_len, pos = read_varint(payload, 0)
    if chain_len > MAX_CHAIN_LEN:  # step 3: before anything is sliced
        raise Refused("ChainTooLong", f"chain of {chain_len} bytes, over {MAX_CHAIN_LEN}")
    if len(payload) - pos < chain_len + PROOF_LEN:
        raise Refused("Truncated", f"{len(payload) - pos} bytes left for a {chain_len}-byte chain and the proof")
    chain = payload[pos:pos + chain_len]; pos += chain_len
    proof = payload[pos:pos + PROOF_LEN]; pos += PROOF_LEN
    fuel, pos = read_varint(payload, pos)
    return {"chain": chain.hex(), "proof": proof.hex(), "fuel": fuel, "args": payload[pos:].hex()}


# An encoder of our own, for the self-checks and the re-encoding check
def enc_varint(v):
    assert 0 <= v < 2**64
    out = bytearray()
    while v >= 0x80: out.append(v & 0x7F | 0x80); v >>= 7
    return bytes(out + bytes([v]))

def encode_payload(call):
    chain, proof = bytes.fromhex(call["chain"]), bytes.fromhex(call["proof"])
    assert len(proof) == PROOF_LEN
    return enc_varint(len(chain)) + chain + proof + enc_varint(call["fuel"]) + bytes.fromhex(call["args"])


def outcome(fn, arg):
    try: return fn(arg), None
    except Refused as e: return None, e


# Vector checks: each yields (id, ok, detail)
FIELDS = ("chain", "proof", "fuel", "args")

def check_payload(t):
    tc, comment, flags = t["tcId"], t.get("comment", ""), t.get("flags", [])
    payload = bytes.fromhex(t["payload"])
    got, err = outcome(decode_payload, payload)
    if t["result"] == "valid":
        if err: yield tc, False, f"{comment}: refused ({err})"; return
        diff = [k for k in FIELDS if got[k] != t.get(k)]
        yield tc, not diff, f"{comment}: " + "; ".join(f"{k}: got {got[k]!r}, expected {t.get(k)!r}" for k in diff)
        again = encode_payload(got)
        yield f"{tc} re-encode", again == payload, f"{comment}: re-encoding gives {again.hex()[:80]}…"
    elif t["result"] == "invalid":
        if err is None: yield tc, False, f"{comment}: accepted as {got}"; return
        yield tc, bool(flags) and err.fault in flags, f"{comment}: refused for {err}, flags {flags}"
    else:
        yield tc, False, f"{comment}: result {t['result']!r}"

def check_method(t):
    tc, comment, flags = t["tcId"], t.get("comment", ""), t.get("flags", [])
    got, err = outcome(parse_method, t["method"])
    if t["result"] == "valid":
        if err: yield tc, False, f"{comment}: refused ({err})"; return
        yield tc, got == t.get("index"), f"{comment}: index {got}, expected {t.get('index')}"
        yield f"{tc} re-spell", method_text(got) == t["method"], f"{comment}: index {got} is spelled {method_text(got)!r}"
    elif t["result"] == "invalid":
        if err is None: yield tc, False, f"{comment}: accepted as {got}"; return
        yield tc, bool(flags) and err.fault in flags and t.get("index") is None, \
            f"{comment}: refused for {err}, flags {flags}, index {t.get('index')}"
    else:
        yield tc, False, f"{comment}: result {t['result']!r}"

GROUPS = {"CallPayload": check_payload, "CallMethod": check_method}

def check_calls(doc):
    known = set(doc.get("notes", {}))
    ids = [t.get("tcId") for g in doc["testGroups"] for t in g["tests"]]
    yield "tcIds", len(set(ids)) == len(ids), f"repeated tcIds in {ids}"
    types = [g.get("type") for g in doc["testGroups"]]
    yield "groups", sorted(types) == sorted(GROUPS), f"groups {types}, expected one each of {sorted(GROUPS)}"
    for g in doc["testGroups"]:
        check = GROUPS.get(g.get("type"))
        if check is None: yield f"group {g.get('type')}", False, "unknown group type"; continue
        for t in g["tests"]:
            unknown = [f for f in t.get("flags", []) if f not in known]
            if unknown: yield f"{t['tcId']} flags", False, f"{t.get('comment', '')}: flags {unknown} not described in notes"
            yield from check(t)


# Self-checks on payloads and methods built by hand
def self_checks():
    def fault(fn, arg):
        got, err = outcome(fn, arg)
        return err.fault if err else got

    # varints (spec/cap.md §4.1 and its examples)
    def varint(hexs):
        buf = bytes.fromhex(hexs)
        try:
            v, pos = read_varint(buf, 0)
            return v if pos == len(buf) else "left over"
        except Refused as e: return e.fault
    for hexs, want in (("00", 0), ("7f", 127), ("8001", 128), ("ac02", 300), ("8000", "NonCanonical"),
                       ("a800", "NonCanonical"), ("ff" * 9 + "01", 2**64 - 1), ("80" * 9 + "01", 2**63),
                       ("ff" * 9 + "02", "NonCanonical"), ("ff" * 9 + "00", "NonCanonical"),
                       ("ff" * 10, "NonCanonical"), ("ff" * 11, "NonCanonical"), ("ffff", "Truncated"),
                       ("ff" * 9, "Truncated"), ("", "Truncated")):
        yield f"varint {hexs or 'empty'}", varint(hexs) == want, f"got {varint(hexs)}, expected {want}"
    for v in (0, 1, 127, 128, 300, 4096, 2**32, 2**63, 2**64 - 1):
        yield f"varint {v} round trip", read_varint(enc_varint(v), 0) == (v, len(enc_varint(v))), "differs"

    # The example of §9.6, spelled out byte by byte
    chain, proof = bytes(range(40)), bytes([0xAB] * 64)
    spelled = b"\x28" + chain + proof + b"\xac\x02" + b"hello"
    example = {"chain": chain.hex(), "proof": proof.hex(), "fuel": 300, "args": b"hello".hex()}
    yield "example is 112 bytes", len(spelled) == 112, f"{len(spelled)} bytes"
    yield "example encodes", encode_payload(example) == spelled, encode_payload(example).hex()
    yield "example decodes", fault(decode_payload, spelled) == example, f"got {fault(decode_payload, spelled)}"

    # Truncation: every cut before the end of fuel; a cut inside args is a shorter valid payload
    header = len(spelled) - 5
    cuts = [n for n in range(header) if fault(decode_payload, spelled[:n]) != "Truncated"]
    yield "every cut before args is Truncated", not cuts, f"cuts at {cuts} are not"
    for n in range(header, len(spelled) + 1):
        got = fault(decode_payload, spelled[:n])
        yield f"cut at {n} keeps {n - header} argument bytes", got == dict(example, args=spelled[header:n].hex()), f"got {got}"

    def call(chain_len, fuel=1, args=b"", proof=proof):
        return {"chain": bytes([7] * chain_len).hex(), "proof": proof.hex(), "fuel": fuel, "args": args.hex()}
    def accepts(name, c):
        enc = encode_payload(c)
        got = fault(decode_payload, enc)
        return name, got == c and encode_payload(got) == enc, f"got {got}"
    def refuses(name, payload, want):
        got = fault(decode_payload, payload)
        return name, got == want, f"got {got}, expected {want}"

    # The chain bound (step 3), checked before truncation (step 4)
    yield accepts("empty chain", call(0))
    yield accepts("chain of MAX_CHAIN_LEN", call(MAX_CHAIN_LEN))
    yield refuses("MAX_CHAIN_LEN + 1, fully present", encode_payload(call(MAX_CHAIN_LEN + 1)), "ChainTooLong")
    yield refuses("MAX_CHAIN_LEN + 1, nothing after", enc_varint(MAX_CHAIN_LEN + 1), "ChainTooLong")
    yield refuses("chain length 2^64 - 1", enc_varint(2**64 - 1), "ChainTooLong")
    yield refuses("MAX_CHAIN_LEN, nothing after", enc_varint(MAX_CHAIN_LEN), "Truncated")
    yield refuses("MAX_CHAIN_LEN, proof one short", encode_payload(call(MAX_CHAIN_LEN))[:-2], "Truncated")
    yield refuses("overlong chain length beats its bound", b"\x81\xa0\x00", "NonCanonical")
    yield refuses("chain length over 64 bits", b"\xff" * 9 + b"\x02", "NonCanonical")

    # fuel (step 5) and args (step 6)
    yield accepts("fuel 0", call(3, fuel=0))
    yield accepts("fuel 2^64 - 1", call(3, fuel=2**64 - 1))
    base = enc_varint(3) + bytes([7] * 3) + proof
    yield refuses("fuel overlong", base + b"\x80\x00", "NonCanonical")
    yield refuses("fuel 10th byte 0x00", base + b"\xff" * 9 + b"\x00", "NonCanonical")
    yield refuses("fuel over 64 bits", base + b"\xff" * 9 + b"\x02", "NonCanonical")
    yield refuses("fuel cut inside", base + b"\xff", "Truncated")
    yield refuses("no fuel", base, "Truncated")
    yield accepts("arguments that look like varints", call(3, args=b"\x80\x00\xff"))
    yield accepts("large arguments", call(3, args=bytes(70_000)))
    yield accepts("any proof bytes", call(3, proof=bytes(64)))

    # methods (step 1): exactly the shortest decimal spelling of 0..=255
    for m in range(256):
        if fault(parse_method, method_text(m)) != m:
            yield f"method {m}", False, f"{method_text(m)!r} gives {fault(parse_method, method_text(m))}"; break
    else:
        yield "methods 0..=255 parse their decimal names", True, ""
    for text in ("", "00", "000", "01", "007", "256", "999", "1000", "0255", "-0", "-1", "+1", " 1", "1 ",
                 "1\n", "1.0", "1e2", "0x1", "1_0", "٣", "１", "²", "ten", "\x00"):
        yield f"method {text!r}", fault(parse_method, text) == "BadMethod", f"got {fault(parse_method, text)}"


def main():
    run("host", [("calls.json", check_calls), (None, self_checks)], "payloads and methods built by hand")


if __name__ == "__main__":
    main()
