"""The floors check (check_floors.py): the repository passes it, and it does catch what it is for."""
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, 'check_floors.py')
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))


def run(root):
    p = subprocess.run([sys.executable, CHECK, root], capture_output=True, text=True)
    return p.returncode, p.stdout


def tree(files):
    d = tempfile.TemporaryDirectory()
    for path, text in files.items():
        full = os.path.join(d.name, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, 'w') as f:
            f.write(text)
    return d


class Floors(unittest.TestCase):
    def test_repository_has_no_upward_include(self):
        code, out = run(ROOT)
        print(out.strip().splitlines()[-1])
        self.assertEqual(code, 0, out)

    def test_upward_include_is_reported_with_file_and_line(self):
        with tree({'kernels/a.cpp': '#include "kernels/k.h"\n#include <vector>\n#include "engine/m2fp.h"\n',
                   'kernels/k.h': '', 'engine/m2fp.h': '#include "kernels/k.h"\n'}) as d:
            code, out = run(d)
        self.assertEqual(code, 1)
        self.assertIn('kernels/a.cpp:3: #include "engine/m2fp.h": kernels/ (floor 1) reaches up to engine/ (floor 3)',
                      out)
        self.assertNotIn('engine/m2fp.h:1', out)  # downward is fine

    def test_unknown_folder_is_reported(self):
        with tree({'engine/a.cpp': '#include "server/x.h"\n'}) as d:
            code, out = run(d)
        self.assertEqual(code, 1)
        self.assertIn('server/ is not a floor', out)

    def test_include_beside_the_file_is_fine(self):
        with tree({'kernels/avx2/a.cpp': '#include "simd_ops.h"\n', 'kernels/avx2/simd_ops.h': ''}) as d:
            code, out = run(d)
        self.assertEqual(code, 0, out)


if __name__ == '__main__':
    unittest.main()
