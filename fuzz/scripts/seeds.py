#!/usr/bin/env python3
"""Writes seed corpora for the fuzz targets into fuzz/corpus-raw/<target>/ from generated data
(`kizashi generate --out DIR --accounts 5 --days 10`) and, for the state and record targets,
from states that event_apply dumps (KIZASHI_FUZZ_DUMP_STATES). Usage: seeds.py GEN_DIR [STATES_DIR]"""
import os, sys, hashlib, json

gen = sys.argv[1]
states_dir = sys.argv[2] if len(sys.argv) > 2 else None
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus-raw")

def put(target, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)

def var(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7f) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)

def zz(n):
    return var((n << 1) ^ (n >> 63) if n >= 0 else ((n << 1) ^ -1) & (2**64 - 1))

def s(t):
    b = t.encode()
    return var(len(b)) + b

lines = {}
for kind, name in [("u", "usage.jsonl"), ("s", "support.jsonl"), ("a", "accounts.jsonl")]:
    with open(os.path.join(gen, name), "rb") as f:
        lines[kind] = [l.rstrip(b"\n") for l in f if l.strip()]

# event_decode: one record, kind byte first.
for kind, ls in lines.items():
    for l in ls[:12]:
        put("event_decode", kind.encode() + l)

# event_apply: one account's records of all kinds in time order, a few per file.
def ts(l):
    v = json.loads(l)["ts"]
    return v if isinstance(v, int) else v
by_account = {}
for kind, ls in lines.items():
    for l in ls:
        by_account.setdefault(json.loads(l)["account_id"], []).append((kind, l))
for acct, recs in by_account.items():
    accts = [r for r in recs if r[0] == "a"]
    rest = [r for r in recs if r[0] != "a"]
    for chunk in range(0, min(len(rest), 120), 40):
        part = accts + rest[chunk:chunk + 40]
        put("event_apply", b"\n".join(k.encode() + l for k, l in part))

# records_decode: outbox entries (0), checkpoints (1), changelog records (2: key length, key, value).
def outbox(kind, key, payload, headers):
    b = bytes([kind]) + (b"\x00" if key is None else b"\x01" + var(len(key)) + key)
    b += var(len(payload)) + payload + var(len(headers))
    for k, v in headers:
        b += s(k) + var(len(v)) + v
    return b
alert = lines["u"][0]
put("records_decode", b"\x00\x00" + outbox(0, b"acct-00001", alert, []))
put("records_decode", b"\x00\x00" + outbox(2, b"acct-00001", b"not json", [("kizashi.reason", b"not_json"), ("kizashi.source.partition", b"3")]))
put("records_decode", b"\x00\x00" + outbox(1, None, b"{}", []))
def checkpoint(offsets, stream_time):
    b = b"\x01" + var(len(offsets))
    for t, o in offsets:
        b += s(t) + zz(o)
    return b + (b"\x00" if stream_time is None else b"\x01" + zz(stream_time))
cp = checkpoint([("product-usage", 969), ("support-events", 6), ("account-updates", 5)], 1795600000000)
put("records_decode", b"\x01\x00" + cp)
put("records_decode", b"\x01\x00" + checkpoint([], None))
put("records_decode", b"\x02\x05" + b"\x00\x00\x00\x02\xff" + cp)
if states_dir:
    for i, name in enumerate(sorted(os.listdir(states_dir))[:40]):
        with open(os.path.join(states_dir, name), "rb") as f:
            st = f.read()
        put("state_decode", st)
        if i < 8:
            key = b"\x00\x00\x00\x01" + b"acct-0000" + str(i).encode()
            put("records_decode", b"\x02" + bytes([len(key)]) + key + st)

# api_request: prefix byte (0 queue query, 1 account path, 2 none), then the URI's rest.
for q in [b"band=red&limit=5", b"segment=smb&offset=1&limit=1000", b"band=green&band=yellow", b"limit=0", b"offset=-1",
          b"segment=%C3%BCn%C3%AF", b"x=1", b""]:
    put("api_request", b"\x00" + q)
for p in [b"acme", b"a%20b", b"%C3%BCn%C3%AF", b"x%252Fy", b"nobody", b"%FF"]:
    put("api_request", b"\x01" + p)
for p in [b"/metrics", b"/healthz", b"/readyz", b"/v1/accounts", b"/nothing", b"/v1/accounts/acme/x"]:
    put("api_request", b"\x02" + p)
print("seeds written to", os.path.abspath(root))
