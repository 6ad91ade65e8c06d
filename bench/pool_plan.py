#!/usr/bin/env python3
"""bench/pool_plan.py: what one parse asks of the buffer pool at once, against a plan made for it.

Reads a trace of the pool's large blocks (engine/buffer_pool.h, pool::trace_to; `bench_e2e
--pool-trace FILE` records the last timed parse) and prints
  - the blocks asked for and the bytes they ask, in all;
  - the most bytes asked for at once (the blocks in use at that moment, as asked), and the most
    mapped at once (the same blocks as the pool handed them out: a cached block larger than asked
    counts whole);
  - the size of one arena holding every block given back within the trace at an offset fixed in
    advance (the lifetimes known from the trace, the largest blocks placed first at the lowest offset
    free for their whole lifetime: greedy, not optimal), and the blocks still in use at the end (they
    outlive the trace: a parse's results), which such a plan leaves to the pool.
The pool itself keeps freed blocks up to its cap (bench_e2e's `pool:` line says how much): the
difference between what it holds and the planned arena is what a plan made at load would give back.

Usage: pool_plan.py TRACE [--json]
Standard library only (any python3).
"""
import argparse
import json
import sys

GRANULE = 64 << 10  # the pool rounds large sizes up to this (engine/buffer_pool.cpp, kGranule)


def rounded(n):
    return (n + GRANULE - 1) // GRANULE * GRANULE


def read_trace(lines):
    """Blocks as (start event, end event or None, bytes asked, bytes mapped), in order of allocation."""
    blocks, live = [], {}
    event = 0
    for no, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        f = line.split()
        if len(f) != 4 or f[0] not in ("A", "R"):
            raise ValueError(f"line {no}: expected 'A|R ADDRESS ASKED MAPPED', got {line!r}")
        kind, addr, asked, mapped = f[0], f[1], int(f[2]), int(f[3])
        if kind == "A":
            if addr in live:
                raise ValueError(f"line {no}: {addr} handed out twice without a release")
            live[addr] = len(blocks)
            blocks.append([event, None, asked, mapped])
        elif addr in live:  # a release of a block handed out before the trace began is ignored
            blocks[live.pop(addr)][1] = event
        event += 1
    return blocks, event


def peak_at_once(blocks, end, key):
    delta = [0] * (end + 1)
    for s, e, asked, mapped in blocks:
        v = asked if key == "asked" else mapped
        delta[s] += v
        delta[end if e is None else e] -= v
    cur = best = 0
    for d in delta:
        cur += d
        best = max(best, cur)
    return best


def plan_arena(blocks):
    """Offsets for the blocks given back within the trace: largest first, each at the lowest offset
    where it overlaps no block placed before it that is in use at some time it is."""
    items = sorted(((rounded(a), s, e) for s, e, a, _ in blocks if e is not None), key=lambda t: (-t[0], t[1]))
    placed, top = [], 0
    for size, s, e in items:
        busy = sorted((o, o + z) for o, z, s2, e2 in placed if s2 < e and s < e2)
        off = 0
        for lo, hi in busy:
            if off + size <= lo:
                break
            off = max(off, hi)
        placed.append((off, size, s, e))
        top = max(top, off + size)
    return top


def summary(blocks, end):
    kept = [b for b in blocks if b[1] is None]
    return {
        "blocks": len(blocks),
        "asked_bytes": sum(b[2] for b in blocks),
        "peak_asked_bytes": peak_at_once(blocks, end, "asked"),
        "peak_mapped_bytes": peak_at_once(blocks, end, "mapped"),
        "arena_bytes": plan_arena(blocks),
        "still_in_use_blocks": len(kept),
        "still_in_use_bytes": sum(b[2] for b in kept),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = ap.parse_args(argv)
    with open(a.trace) as f:
        blocks, end = read_trace(f)
    s = summary(blocks, end)
    if a.json:
        print(json.dumps(s))
        return 0
    mb = lambda n: n / (1 << 20)
    print(f"{a.trace}: {s['blocks']} large blocks, {mb(s['asked_bytes']):.1f} MB asked in all")
    print(f"at once:    at most {mb(s['peak_asked_bytes']):.1f} MB asked, "
          f"{mb(s['peak_mapped_bytes']):.1f} MB mapped (the pool's blocks as handed out)")
    print(f"planned:    one arena of {mb(s['arena_bytes']):.1f} MB holds every block given back in the trace "
          f"(offsets fixed in advance, largest first)")
    print(f"outliving:  {s['still_in_use_blocks']} blocks, {mb(s['still_in_use_bytes']):.1f} MB, still in use at "
          f"the end (the parse's results), left to the pool")
    return 0


if __name__ == "__main__":
    sys.exit(main())
