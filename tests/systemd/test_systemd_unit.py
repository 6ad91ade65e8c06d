"""deploy/systemd/m2fp.service (docs/SERVICE.md, "As a systemd service"): the hardening it promises,
setting by setting, and `systemd-analyze verify` on it.

verify checks that ExecStart's program exists, so it runs on a copy whose ExecStart names the built
binary ($M2FP_BIN) instead of /usr/local/bin/m2fp; everything else is the file as shipped. Any line
verify prints about the unit fails the test (an unknown key, a bad value); a copy with a misspelt key
shows that it would. Where systemd-analyze is missing (Debian package `systemd`, in scripts/deps.sh)
or cannot run here, that part is skipped with the reason and the settings are still checked.

Run by CTest (tests/CMakeLists.txt: systemd_unit) as
    M2FP_BIN=<build>/m2fp /usr/bin/python3 -m unittest discover -s tests/systemd -v
"""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT = os.path.join(ROOT, "deploy", "systemd", "m2fp.service")
BIN = os.environ.get("M2FP_BIN", "")


def read_unit(path):
    """{section: [(key, value), ...]} in file order (systemd allows a key more than once)."""
    sections, current = {}, None
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            m = re.match(r"^\[(\w+)\]$", line)
            if m:
                current = sections.setdefault(m.group(1), [])
                continue
            key, sep, value = line.partition("=")
            if not sep or current is None:
                raise AssertionError("%s: not a key=value line in a section: %r" % (path, raw))
            current.append((key.strip(), value.strip()))
    return sections


class UnitSettings(unittest.TestCase):
    """The promises of docs/SERVICE.md, read from the file."""

    @classmethod
    def setUpClass(cls):
        cls.unit = read_unit(UNIT)

    def values(self, section, key):
        return [v for k, v in self.unit.get(section, []) if k == key]

    def one(self, section, key):
        v = self.values(section, key)
        self.assertEqual(len(v), 1, "%s= in [%s]: %r" % (key, section, v))
        return v[0]

    def test_sections(self):
        self.assertEqual(sorted(self.unit), ["Install", "Service", "Unit"])
        self.assertEqual(self.one("Install", "WantedBy"), "multi-user.target")

    def test_own_user(self):
        self.assertEqual(self.one("Service", "DynamicUser"), "yes")
        self.assertEqual(self.one("Service", "User"), "m2fp")
        self.assertEqual(self.one("Service", "Group"), "m2fp")
        self.assertEqual(self.one("Service", "NoNewPrivileges"), "yes")
        self.assertEqual(self.one("Service", "CapabilityBoundingSet"), "")  # none at all
        self.assertEqual(self.one("Service", "AmbientCapabilities"), "")

    def test_read_only_but_its_state(self):
        self.assertEqual(self.one("Service", "ProtectSystem"), "strict")
        self.assertIn("/usr/local/share/m2fp", self.one("Service", "ReadOnlyPaths").split())
        self.assertEqual(self.one("Service", "StateDirectory"), "m2fp")
        env = dict(v.split("=", 1) for v in self.values("Service", "Environment"))
        self.assertTrue(env["M2FP_CATALOG"].startswith("/var/lib/m2fp/"), env)  # the one writable folder
        self.assertTrue(env["M2FP_MODEL"].startswith("/usr/local/share/m2fp/"), env)
        for key in ("ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules",
                    "ProtectControlGroups", "RestrictSUIDSGID", "LockPersonality", "RestrictRealtime"):
            self.assertEqual(self.one("Service", key), "yes", key)
        self.assertEqual(self.one("Service", "SystemCallFilter"), "@system-service")

    def test_oneDNN_jit_is_not_forbidden(self):
        # oneDNN writes and then executes its kernels: MemoryDenyWriteExecute=yes would break every parse
        self.assertEqual(self.values("Service", "MemoryDenyWriteExecute"), [])

    def test_restart_on_failure_and_a_clean_stop(self):
        self.assertEqual(self.one("Service", "Restart"), "on-failure")
        self.assertGreater(int(self.one("Service", "RestartSec")), 0)
        self.assertEqual(self.one("Service", "KillSignal"), "SIGTERM")  # m2fp serve finishes running photos
        self.assertGreater(int(self.one("Service", "TimeoutStopSec")), 120)  # > serve's --timeout default
        self.assertGreater(int(self.one("Unit", "StartLimitBurst")), 0)

    def test_exec_start_uses_options_serve_has(self):
        cmd = self.one("Service", "ExecStart").split()
        self.assertEqual(cmd[:2], ["/usr/local/bin/m2fp", "serve"])
        opts = [a for a in cmd if a.startswith("--")]
        self.assertEqual(opts, ["--model", "--host", "--port"])
        if not BIN or not os.path.isfile(BIN):
            self.skipTest("M2FP_BIN not set: the options are not compared with m2fp serve --help")
        help_text = subprocess.run([BIN, "serve", "--help"], stdout=subprocess.PIPE, universal_newlines=True,
                                   check=True).stdout
        for o in opts:
            self.assertRegex(help_text, r"\n  %s \S" % re.escape(o))


class Verify(unittest.TestCase):
    """systemd-analyze verify on the unit (ExecStart pointed at the built binary)."""

    def setUp(self):
        self.analyze = shutil.which("systemd-analyze")
        if not self.analyze:
            self.skipTest("systemd-analyze is not installed (Debian package systemd, scripts/deps.sh): "
                          "only the settings were checked")
        if not BIN or not os.path.isfile(BIN):
            raise AssertionError("M2FP_BIN must name the built m2fp (got %r)" % BIN)
        self.tmp = tempfile.mkdtemp(prefix="m2fp_systemd_")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def verify(self, text):
        path = os.path.join(self.tmp, "m2fp.service")
        with open(path, "w") as f:
            f.write(text.replace("/usr/local/bin/m2fp", os.path.abspath(BIN)))
        r = subprocess.run([self.analyze, "verify", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=120)
        about = [l for l in r.stdout.splitlines() if "m2fp.service" in l]
        if r.returncode != 0 and not about:
            self.skipTest("systemd-analyze verify cannot run here (status %d): %s" % (r.returncode, r.stdout.strip()[:300]))
        return r.returncode, about

    def test_the_unit_verifies_cleanly(self):
        with open(UNIT) as f:
            rc, about = self.verify(f.read())
        self.assertEqual((rc, about), (0, []))
        print("  systemd-analyze verify: no complaint about m2fp.service")

    def test_a_misspelt_key_would_be_caught(self):
        with open(UNIT) as f:
            text = f.read()
        rc, about = self.verify(text.replace("ProtectSystem=strict", "ProtectSytem=strict"))
        self.assertTrue(any("ProtectSytem" in l for l in about), about)


if __name__ == "__main__":
    unittest.main()
