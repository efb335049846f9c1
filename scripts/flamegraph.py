#!/usr/bin/env python3
"""A flame graph (SVG) from `perf script` output, with no dependency.

    perf record -F 499 --call-graph dwarf -o perf.data -- target/release/examples/shard_bench --n 20000
    perf script -i perf.data | scripts/flamegraph.py --title "ingest" --only insert_slice > ingest.svg

--only keeps the stacks with a frame containing that text (e.g. `insert_slice`
for ingest, `ShardStateMachine::query` for queries) and roots the graph there.
--by-thread roots every stack at its thread's name, digits folded (`index-*`,
`apply-*`, `python3`): for a whole-machine profile (`perf record -a`).
Width is the share of samples; hover a box for its name and share.
"""

import argparse
import html
import re
import sys


def stacks(lines, by_thread=False):
    """Yields each sample's frames, outermost first (its thread's name first, if asked)."""
    frames = []
    thread = None
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if frames:
                root = [re.sub(r"\d+", "*", thread)] if by_thread and thread else []
                yield root + list(reversed(frames))
            frames = []
            continue
        if not line.startswith((" ", "\t")):
            thread = line.split()[0]
            continue
        if line.startswith((" ", "\t")):
            parts = line.strip().split(" ", 1)
            name = parts[1] if len(parts) > 1 else parts[0]
            name = re.sub(r"\s*\(\S*\)$", "", name)  # the "(/path/to/binary)" suffix
            name = re.sub(r"\+0x[0-9a-f]+$", "", name)
            frames.append(name)
    if frames:
        root = [re.sub(r"\d+", "*", thread)] if by_thread and thread else []
        yield root + list(reversed(frames))


def build_tree(samples, only):
    root = {"n": 0, "kids": {}}
    for frames in samples:
        if only:
            at = next((i for i, f in enumerate(frames) if only in f), None)
            if at is None:
                continue
            frames = frames[at:]
        node = root
        node["n"] += 1
        for f in frames:
            node = node["kids"].setdefault(f, {"n": 0, "kids": {}})
            node["n"] += 1
    return root


def color(name):
    h = sum(map(ord, name)) % 60
    return f"rgb({200 + h // 2},{80 + h * 2},{40 + h // 3})"


def render(root, title, width=1200, row=16, min_width=0.3):
    total = max(root["n"], 1)
    boxes = []

    def walk(node, name, x, depth):
        w = node["n"] / total * width
        if w < min_width:
            return depth
        boxes.append((x, depth, w, name, node["n"]))
        deepest = depth
        cx = x
        for kid_name, kid in sorted(node["kids"].items()):
            deepest = max(deepest, walk(kid, kid_name, cx, depth + 1))
            cx += kid["n"] / total * width
        return deepest

    depth = walk(root, "all", 0.0, 0)
    height = (depth + 3) * row
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="monospace" font-size="11">',
        f'<text x="4" y="{row - 3}">{html.escape(title)} ({total} samples)</text>',
    ]
    for x, d, w, name, n in boxes:
        y = height - (d + 1) * row
        label = html.escape(name)
        share = 100.0 * n / total
        chars = int(w / 7)
        text = label if len(name) <= chars else html.escape(name[: max(chars - 2, 0)]) + ".."
        out.append(
            f'<g><title>{label} ({share:.1f}%)</title>'
            f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 1}" fill="{color(name)}"/>'
            + (f'<text x="{x + 2:.1f}" y="{y + row - 4}">{text}</text>' if chars > 2 else "")
            + "</g>"
        )
    out.append("</svg>")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--title", default="profile")
    ap.add_argument("--only", default=None)
    ap.add_argument("--by-thread", action="store_true")
    ap.add_argument("--min-width", type=float, default=0.3, help="narrowest box drawn, px")
    args = ap.parse_args()
    tree = build_tree(stacks(sys.stdin, args.by_thread), args.only)
    print(render(tree, args.title, min_width=args.min_width))


if __name__ == "__main__":
    sys.exit(main())
