#!/usr/bin/env python3
"""Independent checker for the isocore-pow v1 vectors, written from spec/pow.md alone.

Usage: python3 conformance/pow/check_stamps.py [VECTOR_DIR]
Needs the PyPI package `blake3`. Exits 1 if any vector disagrees with this implementation.
"""
import json
import pathlib
import struct
import sys

import blake3

STAMP_LEN = 41
VER_ALG_V1 = 0x11
U64_MAX = 2**64 - 1


def derive_key(context, material):
    return blake3.blake3(material, derive_key_context=context).digest()


def epoch_seed(secret, epoch):
    return derive_key("isocore/pow/v1/seed", secret + struct.pack("<I", epoch))


def stamp_key(seed, sender, receiver):
    return derive_key("isocore/pow/v1/peer", seed + sender + receiver)


def target(effort):
    return None if effort == 0 else U64_MAX // (64 * effort)


def decode(b):
    """Returns (epoch, effort, nonces) or None for anything that is not a v1 stamp."""
    if len(b) != STAMP_LEN or b[0] != VER_ALG_V1:
        return None
    epoch, effort = struct.unpack_from("<II", b, 1)
    nonces = struct.unpack_from("<4Q", b, 9)
    if effort == 0:
        return None
    return epoch, effort, nonces


def block(digest, epoch, effort, nonce, index):
    b = digest + struct.pack("<IIQBB", epoch, effort, nonce, index, VER_ALG_V1)
    return b + bytes(64 - len(b))


class Checker:
    def __init__(self):
        self.failures = 0
        self.count = 0

    def expect(self, tc, what, got, want):
        if got != want:
            self.failures += 1
            print(f"tcId {tc['tcId']} ({tc['comment']}): {what}: got {got}, expected {want}")

    def keys(self, data):
        for g in data["testGroups"]:
            for t in g["tests"]:
                self.count += 1
                if g["type"] == "EpochSeed":
                    got = epoch_seed(bytes.fromhex(t["secret"]), t["epoch"])
                    self.expect(t, "seed", got.hex(), t["seed"])
                else:
                    got = stamp_key(*(bytes.fromhex(t[k]) for k in ("seed", "sender", "receiver")))
                    self.expect(t, "key", got.hex(), t["key"])

    def targets(self, data):
        for g in data["testGroups"]:
            for t in g["tests"]:
                self.count += 1
                tgt = target(t["effort"])
                self.expect(t, "target", None if tgt is None else str(tgt), t["target"])
                ok = tgt is not None and int(t["value"]) <= tgt
                self.expect(t, "result", "valid" if ok else "invalid", t["result"])

    def stamps(self, data):
        for g in data["testGroups"]:
            secret = bytes.fromhex(g["receiverSecret"])
            receiver = bytes.fromhex(g["receiver"])
            current = g["currentEpoch"]
            for t in g["tests"]:
                self.count += 1
                sender, digest = bytes.fromhex(t["sender"]), bytes.fromhex(t["digest"])
                decoded = decode(bytes.fromhex(t["stamp"]))
                valid = False
                if decoded is None:
                    self.expect(t, "decodes", False, "key" in t)
                else:
                    epoch, effort, nonces = decoded
                    key = stamp_key(epoch_seed(secret, epoch), sender, receiver)
                    blocks = [block(digest, epoch, effort, n, i) for i, n in enumerate(nonces)]
                    hashes = [blake3.blake3(b, key=key).digest() for b in blocks]
                    tgt = target(effort)
                    self.expect(t, "key", key.hex(), t.get("key"))
                    self.expect(t, "target", str(tgt), t.get("target"))
                    self.expect(t, "blocks", [b.hex() for b in blocks], t.get("blocks"))
                    self.expect(t, "subHashes", [h.hex() for h in hashes], t.get("subHashes"))
                    fresh = epoch in (current, current - 1)
                    work = all(int.from_bytes(h[:8], "little") <= tgt for h in hashes)
                    valid = fresh and work
                self.expect(t, "result", "valid" if valid else "invalid", t["result"])


def main():
    root = pathlib.Path(__file__).resolve().parents[1]
    vec_dir = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else root / "vectors" / "pow"
    c = Checker()
    for name, check in (("keys.json", c.keys), ("target.json", c.targets), ("stamps.json", c.stamps)):
        data = json.loads((vec_dir / name).read_text())
        before = c.count
        check(data)
        if c.count - before != data["numberOfTests"]:
            c.failures += 1
            print(f"{name}: checked {c.count - before} tests, header says {data['numberOfTests']}")
    if c.count == 0:
        c.failures += 1
        print("no vectors found")
    print(f"{c.count} vectors checked, {c.failures} failures")
    sys.exit(1 if c.failures else 0)


if __name__ == "__main__":
    main()
