#!/usr/bin/env python3
"""Verify a C2SP tlog-proof (c2sp.org/tlog-proof@v1) offline, written from
the specifications, sharing no code with qsign:

- C2SP tlog-proof: "c2sp.org/tlog-proof@v1", optional "extra <base64>",
  "index <n>", the inclusion path (one base64 hash a line), a blank line,
  then the checkpoint as a signed note;
- C2SP signed-note: text lines, a blank line, signature lines
  "\u2014 <name> <base64(4-byte key id || signature)>"; an Ed25519 key id is
  SHA-256(name || "\n" || 0x01 || public key)[:4], its verifier key
  "<name>+<hex key id>+<base64(0x01 || public key)>";
- C2SP tlog-checkpoint: origin, decimal size, base64 root hash;
- RFC 6962 §2.1 hashing, RFC 9162 §2.1.3.2 inclusion verification;
- RFC 8785: the record (the extra data) must be canonical JSON.

usage: tlog_proof.py PROOF VKEY [--origin ORIGIN]
Prints a JSON verdict; exit 0 only when every check passes.
"""
import base64
import hashlib
import json
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def fail(reason):
    print(json.dumps({"ok": False, "reason": reason}))
    sys.exit(1)


def parse_vkey(text):
    name, key_id, key = text.strip().split("+", 2)
    raw = base64.b64decode(key, validate=True)
    if len(raw) != 33 or raw[0] != 0x01:
        fail("verifier key is not an Ed25519 signed-note key")
    public = raw[1:]
    expected = hashlib.sha256(name.encode() + b"\n" + b"\x01" + public).digest()[:4]
    if expected.hex() != key_id:
        fail("verifier key id does not match its name and key")
    return name, expected, public


def open_note(note, name, key_id, public):
    split = note.find("\n\n")
    if split < 0:
        fail("checkpoint note has no blank line")
    text, signatures = note[: split + 1], note[split + 2 :]
    for line in signatures.splitlines():
        if not line.startswith("\u2014 "):
            fail("signature line without the em dash")
        signer, blob = line[2:].split(" ", 1)
        blob = base64.b64decode(blob, validate=True)
        if signer == name and blob[:4] == key_id and len(blob) == 68:
            Ed25519PublicKey.from_public_bytes(public).verify(blob[4:], text.encode())
            return text
    fail("no signature by the log's key on the checkpoint")


def parse_checkpoint(text):
    lines = text.split("\n")
    origin, size, root = lines[0], lines[1], lines[2]
    if not size.isdigit() or (len(size) > 1 and size[0] == "0"):
        fail("checkpoint size is not a decimal number")
    root = base64.b64decode(root, validate=True)
    if len(root) != 32:
        fail("checkpoint root is not 32 bytes")
    return origin, int(size), root


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf, index, size, path, root):
    """RFC 9162 §2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def canonical(value):
    """RFC 8785 for strings, integers, lists, objects (what records hold)."""
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: kv[0].encode("utf-16-be"))
        return "{" + ",".join(canonical(k) + ":" + canonical(v) for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    fail("a record value of an unexpected type")


def main():
    args = sys.argv[1:]
    if len(args) not in (2, 4):
        fail(__doc__)
    proof = open(args[0], encoding="utf-8").read()
    name, key_id, public = parse_vkey(open(args[1], encoding="utf-8").read())
    origin = args[3] if len(args) == 4 else name

    head, _, note = proof.partition("\n\n")
    lines = head.split("\n")
    if lines[0] != "c2sp.org/tlog-proof@v1":
        fail("not a c2sp.org/tlog-proof@v1")
    lines = lines[1:]
    extra = None
    if lines and lines[0].startswith("extra "):
        extra = base64.b64decode(lines[0][6:], validate=True)
        lines = lines[1:]
    if not lines or not lines[0].startswith("index "):
        fail("no index line")
    index = int(lines[0][6:])
    path = [base64.b64decode(h, validate=True) for h in lines[1:]]
    if extra is None:
        fail("no extra line: qsign's proofs carry the record")

    try:
        text = open_note(note, name, key_id, public)
    except Exception as e:  # cryptography's InvalidSignature
        fail(f"checkpoint signature does not verify: {e!r}")
    cp_origin, size, root = parse_checkpoint(text)
    if cp_origin != origin:
        fail(f"checkpoint of another log: {cp_origin}")
    leaf = hashlib.sha256(b"\x00" + extra).digest()
    if not verify_inclusion(leaf, index, size, path, root):
        fail("the inclusion path does not lead to the checkpoint's root")
    record = json.loads(extra)
    if canonical(record).encode() != extra:
        fail("the record is not RFC 8785 canonical JSON")
    print(json.dumps({"ok": True, "index": index, "size": size, "record": record}))


if __name__ == "__main__":
    main()
