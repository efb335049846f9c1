#!/usr/bin/env python3
"""hnswlib (PyPI chroma-hnswlib, the index Chroma runs) on the dataset that
shard_bench wrote, and the ratios of the shard engine to it at equal recall@k.

    hnswlib_bench.py DATASET SHARD_RESULTS [--m 16] [--ef-construction 100]
                     [--sweep 10,16,...] [--targets 0.95,0.99]

DATASET is shard_bench's --data-out file (u32 n, queries, dim, k; data f32;
queries f32; exact top-k u32), SHARD_RESULTS its --results-out JSON lines.
Builds the index twice, on 1 thread and on 2 threads (add_items num_threads),
then sweeps ef one query at a time (as shard_bench does), and for each recall
target compares the cheapest sweep point of each engine reaching it. Ratios
are shard engine / hnswlib: above 1 means the shard engine is faster.
"""

import argparse
import json
import struct
import sys
import time

import hnswlib
import numpy as np


def load_dataset(path):
    with open(path, "rb") as f:
        n, nq, dim, k = struct.unpack("<4I", f.read(16))
        data = np.frombuffer(f.read(4 * n * dim), dtype="<f4").reshape(n, dim)
        queries = np.frombuffer(f.read(4 * nq * dim), dtype="<f4").reshape(nq, dim)
        truth = np.frombuffer(f.read(4 * nq * k), dtype="<u4").reshape(nq, k)
    return data, queries, truth, k


def build(data, m, ef_construction, threads):
    index = hnswlib.Index(space="l2", dim=data.shape[1])
    index.init_index(max_elements=len(data), M=m, ef_construction=ef_construction, random_seed=1)
    start = time.perf_counter()
    # Batches of 1,000 as the shard engine receives them.
    for lo in range(0, len(data), 1000):
        chunk = data[lo : lo + 1000]
        index.add_items(chunk, np.arange(lo, lo + len(chunk)), num_threads=threads)
    return index, len(data) / (time.perf_counter() - start)


def sweep(index, queries, truth, k, efs):
    points = []
    for ef in efs:
        index.set_ef(max(ef, k))
        lat = []
        hits = 0
        for i, q in enumerate(queries):
            q = q.reshape(1, -1)
            t = time.perf_counter()
            labels, _ = index.knn_query(q, k=k, num_threads=1)
            lat.append(time.perf_counter() - t)
            hits += len(set(labels[0].tolist()) & set(truth[i].tolist()))
        lat.sort()
        points.append(
            {
                "ef": ef,
                "recall": hits / (len(queries) * k),
                "p50_ms": lat[len(lat) // 2] * 1e3,
                "qps": len(lat) / sum(lat),
            }
        )
    return points


def cheapest_at(points, target):
    """The sweep point with the smallest ef reaching `target` recall, or None
    (the cost grows with ef; picking by measured speed would pick noise)."""
    ok = [p for p in points if p["recall"] >= target]
    return min(ok, key=lambda p: p["ef"]) if ok else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("shard_results")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=100)
    ap.add_argument("--sweep", default="10,16,24,32,48,64,96,128,200")
    ap.add_argument("--targets", default="0.95,0.99")
    args = ap.parse_args()

    data, queries, truth, k = load_dataset(args.dataset)
    with open(args.shard_results) as f:
        shard = [json.loads(line) for line in f if line.strip()]
    shard_build = next(r for r in shard if r["kind"] == "build")
    shard_search = [r for r in shard if r["kind"] == "search"]

    print(
        f"hnswlib {getattr(hnswlib, '__version__', '')}: n={len(data)} dim={data.shape[1]} "
        f"k={k} M={args.m} ef_construction={args.ef_construction} (same data and queries)"
    )
    builds = {}
    for threads in (1, 2):
        index, rate = build(data, args.m, args.ef_construction, threads)
        builds[threads] = rate
        print(f"hnswlib build, {threads} thread(s)        {rate:>10.0f} records/s")
    points = sweep(index, queries, truth, k, [int(x) for x in args.sweep.split(",")])
    for p in points:
        print(
            f"hnswlib query ef {p['ef']:<4}  p50 {p['p50_ms']:>8.3f} ms  "
            f"{p['qps']:>8.0f} q/s  recall@k {p['recall']:.4f}"
        )

    t = shard_build["threads"]
    print(f"\nratios, shard engine / hnswlib (above 1: shard engine faster)")
    print(
        f"build: shard engine ({t} threads, apply + HNSW) {shard_build['records_per_s']:.0f} rec/s; "
        f"vs hnswlib 1 thread {shard_build['records_per_s'] / builds[1]:.2f}x, "
        f"vs hnswlib 2 threads {shard_build['records_per_s'] / builds[2]:.2f}x"
    )
    for target in [float(x) for x in args.targets.split(",")]:
        ours, theirs = cheapest_at(shard_search, target), cheapest_at(points, target)
        if ours is None or theirs is None:
            who = "shard engine" if ours is None else "hnswlib"
            print(f"recall >= {target}: {who} never reaches it in the sweep")
            continue
        print(
            f"recall >= {target}: shard ef {ours['ef']} (recall {ours['recall']:.4f}, "
            f"p50 {ours['p50_ms']:.3f} ms, {ours['qps']:.0f} q/s) vs hnswlib ef {theirs['ef']} "
            f"(recall {theirs['recall']:.4f}, p50 {theirs['p50_ms']:.3f} ms, {theirs['qps']:.0f} q/s): "
            f"p50 {theirs['p50_ms'] / ours['p50_ms']:.2f}x, q/s {ours['qps'] / theirs['qps']:.2f}x"
        )


if __name__ == "__main__":
    sys.exit(main())
