"""Tests of bench/pool_plan.py (the buffer pool's trace against a plan made for it) on traces
written here, whose figures are worked out by hand.

Run: /usr/bin/python3 -m unittest tests/python/test_pool_plan.py -v
"""

import importlib.util
import io
import os
import unittest

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location("pool_plan", os.path.join(_ROOT, "bench", "pool_plan.py"))
pool_plan = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pool_plan)

MB = 1 << 20


def figures(text):
    blocks, end = pool_plan.read_trace(io.StringIO(text))
    return pool_plan.summary(blocks, end)


class PoolPlanTest(unittest.TestCase):
    def test_peaks_arena_and_blocks_outliving_the_trace(self):
        # a [0, 2), b [1, 4), c [3, 5) in events; d never given back. c asked 1 MB and got a 2 MB block.
        s = figures(f"""# a note
A 0x10 {MB} {MB}
A 0x20 {2 * MB} {2 * MB}
R 0x10 {MB} {MB}
A 0x10 {MB} {2 * MB}
R 0x20 {2 * MB} {2 * MB}
R 0x10 {MB} {2 * MB}
A 0x30 {MB // 2} {MB // 2}
""")
        self.assertEqual(s["blocks"], 4)
        self.assertEqual(s["asked_bytes"], 4 * MB + MB // 2)
        self.assertEqual(s["peak_asked_bytes"], 3 * MB)   # a + b, then b + c
        self.assertEqual(s["peak_mapped_bytes"], 4 * MB)  # b + c's 2 MB block
        # b at 0; a overlaps b in time: at 2 MB; c overlaps b but not a: a's place, 2 MB.
        self.assertEqual(s["arena_bytes"], 3 * MB)
        self.assertEqual(s["still_in_use_blocks"], 1)
        self.assertEqual(s["still_in_use_bytes"], MB // 2)

    def test_sizes_are_planned_as_the_pool_rounds_them(self):
        s = figures("A 0x1 1000 65536\nA 0x2 300000 327680\nR 0x1 1000 65536\nR 0x2 300000 327680\n")
        self.assertEqual(s["peak_asked_bytes"], 301000)
        self.assertEqual(s["arena_bytes"], 65536 + 327680)  # 1000 -> 64 KiB, 300000 -> 320 KiB, both at once

    def test_a_release_of_a_block_from_before_the_trace_is_ignored(self):
        s = figures(f"R 0x9 {MB} {MB}\nA 0x1 {MB} {MB}\nR 0x1 {MB} {MB}\n")
        self.assertEqual((s["blocks"], s["peak_asked_bytes"], s["arena_bytes"]), (1, MB, MB))

    def test_bad_lines_are_errors(self):
        for bad in ("X 0x1 1 1\n", "A 0x1 1\n", f"A 0x1 {MB} {MB}\nA 0x1 {MB} {MB}\n"):
            with self.assertRaises(ValueError, msg=bad):
                figures(bad)


if __name__ == "__main__":
    unittest.main()
