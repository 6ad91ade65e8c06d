#!/usr/bin/env python3
"""The house's floors, enforced: a floor may include the floors below it, never one above.

    check_floors.py [REPO_ROOT]

Reads every C/C++ source and header of the floors listed in FLOORS and fails (exit 1, one line per
offence: file, line, the include and the two floors) when a file includes a header of a higher floor,
or of a folder that is not a floor. Third-party headers (<...>) are not checked. tests/, bench/,
fuzz/ and examples/ stand beside the house and may include any floor, so they are not read.
A new floor goes into FLOORS at its level (docs/ARCHITECTURE.md draws them).
"""
import os
import re
import sys

# Lowest first. A folder may include itself and every folder of a lower level.
FLOORS = [
    ('kernels', 1),
    ('model_loader', 2),
    ('engine', 3),
    ('outfit', 4),
    ('service', 5),
    ('app', 6),
    ('capi', 6),
]
BESIDE = {'tests', 'bench', 'fuzz', 'examples', 'tools', 'build', 'docs', 'scripts', 'deploy', 'web',
          'cmake', 'include', 'python', 'data', 'out'}
SOURCE = re.compile(r'\.(c|cc|cpp|h|hpp)$')
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def main(argv):
    root = os.path.abspath(argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(__file__), '..', '..'))
    level = dict(FLOORS)
    offences, files = [], 0
    for floor, lv in FLOORS:
        top = os.path.join(root, floor)
        for dirpath, _, names in os.walk(top):
            for name in sorted(names):
                if not SOURCE.search(name):
                    continue
                path = os.path.join(dirpath, name)
                files += 1
                rel = os.path.relpath(path, root)
                with open(path, encoding='utf-8', errors='replace') as f:
                    for n, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        inc = m.group(1)
                        target = inc.split('/')[0] if '/' in inc else None
                        if target is None:
                            # "x.h" beside the file: resolved in its own folder, same floor.
                            if os.path.exists(os.path.join(dirpath, inc)):
                                continue
                            offences.append('%s:%d: #include "%s" is not beside the file (use "<floor>/%s")'
                                            % (rel, n, inc, inc))
                            continue
                        if target not in level:
                            if os.path.exists(os.path.join(dirpath, inc)):
                                continue  # a relative path below the file's own folder
                            offences.append('%s:%d: #include "%s": %s/ is not a floor of the house (FLOORS in %s)'
                                            % (rel, n, inc, target, os.path.relpath(__file__, root)))
                        elif level[target] > lv:
                            offences.append('%s:%d: #include "%s": %s/ (floor %d) reaches up to %s/ (floor %d)'
                                            % (rel, n, inc, floor, lv, target, level[target]))
    for o in offences:
        print(o)
    print('check_floors: %d files on %d floors, %d upward or unknown includes' % (files, len(FLOORS), len(offences)))
    return 1 if offences else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
