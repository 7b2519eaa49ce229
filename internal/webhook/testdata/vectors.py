#!/usr/bin/python3
"""Computes Standard Webhooks signature vectors independently of the Go code.

Run with /usr/bin/python3 (stdlib only): ./vectors.py > vectors.json
Each vector gives the key as the sender stores it ("whsec_" + base64, or raw
bytes as hex), the message id, timestamp, body and the expected header.
"""
import base64
import hashlib
import hmac
import json

CASES = [
    # The Standard Webhooks specification's own example.
    {"name": "spec-example", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
     "id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "timestamp": 1614265330,
     "body": '{"test": 2432232314}'},
    {"name": "job-event", "secret": "whsec_" + base64.b64encode(bytes(range(32))).decode(),
     "id": "evt_job_0190f3a1b2c3d4e5f6a7b8c9d0e1f2_succeeded", "timestamp": 1767225600,
     "body": '{"type":"job.succeeded","timestamp":"2026-01-01T00:00:00Z","data":{"id":"job_1","status":"succeeded"}}'},
    {"name": "raw-key-unicode-body", "raw_key_hex": b"local dev secret \xe2\x9c\x93".hex(),
     "id": "msg_2", "timestamp": 1700000000, "body": '{"note":"caf\u00e9 \u2713","n":1}'},
    {"name": "empty-body", "raw_key_hex": "00ff10ef",
     "id": "msg_3", "timestamp": 0, "body": ""},
]


def key_of(case):
    if "secret" in case:
        return base64.b64decode(case["secret"][len("whsec_"):])
    return bytes.fromhex(case["raw_key_hex"])


def main():
    out = []
    for case in CASES:
        signed = "%s.%d.%s" % (case["id"], case["timestamp"], case["body"])
        mac = hmac.new(key_of(case), signed.encode("utf-8"), hashlib.sha256).digest()
        out.append(dict(case, signature="v1," + base64.b64encode(mac).decode()))
    print(json.dumps(out, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
