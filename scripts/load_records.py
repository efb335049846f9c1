#!/usr/bin/env python3
"""Loads N random records into a new collection through a router (the bench drivers'
loader: scripts/bench-backup, scripts/bench-elastic).

    load_records.py ROUTER_URL N DIM [NAME]

Upserts of 250 (base64 f32 embeddings, a small metadata map, a short document) into a
new collection NAME (default "bench", l2). A batch answered 429 or 503 (a shard without
a quorum in time on a loaded machine) is sent again: upserts are idempotent. Prints the
collection id on stdout and the load time on stderr.
"""
import base64
import json
import random
import struct
import sys
import time
import urllib.error
import urllib.request


def main():
    url, n, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    name = sys.argv[4] if len(sys.argv) > 4 else "bench"
    base = url.rstrip("/") + "/api/v2/tenants/default_tenant/databases/default_database"

    def post(path, body, tries=8):
        for attempt in range(tries):
            req = urllib.request.Request(base + path, json.dumps(body).encode(),
                                         {"content-type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=120) as r:
                    return json.load(r)
            except urllib.error.HTTPError as e:
                if e.code not in (429, 503) or attempt == tries - 1:
                    raise
                time.sleep(1)

    cid = post("/collections", {"name": name, "configuration": {"hnsw": {"space": "l2"}}})["id"]
    rng = random.Random(7)
    started = time.time()
    for start in range(0, n, 250):
        ids = [f"r{i:07d}" for i in range(start, min(n, start + 250))]
        embs = [base64.b64encode(struct.pack(f"<{dim}f", *(rng.gauss(0, 1) for _ in range(dim)))).decode()
                for _ in ids]
        post(f"/collections/{cid}/upsert", {
            "ids": ids, "embeddings": embs,
            "metadatas": [{"bucket": i % 100, "tag": "t%d" % (i % 7)} for i in range(start, start + len(ids))],
            "documents": [f"document {i}" for i in range(start, start + len(ids))]})
    took = time.time() - started
    print(f"loaded {n} records x {dim} in {took:.1f} s ({n / max(took, 1e-9):.0f} records/s)",
          file=sys.stderr)
    print(cid)


if __name__ == "__main__":
    main()
