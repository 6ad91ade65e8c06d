"""Batch parsing of a photo folder with GNU parallel (deploy/batch/parse_folder.sh), on this machine
through parallel's --sshlogin ':' (the local host in a multi-host list; remote hosts need only ssh and
the same shared paths). Checked: every photo parsed in batches, a bad photo named and the exit status
1 while the others are parsed, a second run parses only what is missing, duplicate names refused.

Run by CTest (test `batch_parallel`) with M2FP_BIN and M2FP_TESTDATA; skipped when parallel is missing.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "load"))
import service_kit as kit  # noqa: E402

# CI (CI=true) and M2FP_REQUIRE_TOOLS=1 want the tools there (scripts/deps.sh installs them): missing is
# a failure, not a skip.
REQUIRED = os.environ.get("CI") == "true" or os.environ.get("M2FP_REQUIRE_TOOLS") == "1"

SCRIPT = os.path.join(HERE, "batch", "parse_folder.sh")


@unittest.skipUnless(shutil.which("parallel") or REQUIRED, "GNU parallel not installed (scripts/deps.sh installs it)")
@unittest.skipUnless(os.path.exists(kit.BIN), f"{kit.BIN} not built")
class BatchWithParallel(unittest.TestCase):
    def setUp(self):
        self.assertTrue(shutil.which("parallel"), "GNU parallel not installed: scripts/deps.sh installs it (required in CI)")
        self.assertTrue(os.path.exists(kit.CIHP), f"{kit.CIHP} missing: run the CTest fixture fixture_synthetic_cihp")
        self.tmp = tempfile.mkdtemp(prefix="m2fp_batch_")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def run_script(self, *args):
        cmd = ["bash", SCRIPT, "--bin", kit.BIN, "--model", kit.CIHP] + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        return p

    def test_folder_in_batches_with_a_bad_photo_and_a_rerun(self):
        src, out = os.path.join(self.tmp, "photos"), os.path.join(self.tmp, "parsed")
        os.makedirs(os.path.join(src, "day2"))
        names = []
        for i in range(5):
            name = f"shot{i}"
            sub = "day2" if i >= 3 else ""
            with open(os.path.join(src, sub, name + (".png" if i % 2 else ".jpg")), "wb") as f:
                f.write(kit.photo(i, (96, 72), "PNG" if i % 2 else "JPEG"))
            names.append(name)
        with open(os.path.join(src, "broken.jpg"), "wb") as f:  # a bad photo among them
            f.write(kit.truncated_jpeg(9))
        with open(os.path.join(src, "notes.txt"), "w") as f:  # not a photo: not listed
            f.write("hello")

        args = ["--in", src, "--out", out, "--sshlogin", ":", "--jobs", "2", "--batch", "2", "--threads", "1",
                "--", "--short-edge", "64", "--max-size", "128", "--no-outfits"]
        p = self.run_script(*args)
        print(f"\n  first run: exit {p.returncode}\n    " + "\n    ".join(
            line for line in (p.stdout + p.stderr).splitlines() if line.startswith(("parse_folder", "  "))))
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("6 photos", p.stdout)
        self.assertIn("parsed 5 of 6", p.stdout)
        self.assertIn("broken.jpg", p.stderr)
        for n in names:
            with open(os.path.join(out, n, "result.json")) as f:
                self.assertIn("instances", json.load(f))
        with open(os.path.join(out, "joblog.tsv")) as f:
            rows = f.read().strip().splitlines()[1:]
        self.assertEqual(len(rows), 3, "6 photos in batches of 2")
        self.assertEqual(sum(1 for r in rows if r.split("\t")[6] != "0"), 1, "one batch failed")

        # again: only the bad photo is tried
        p = self.run_script(*args)
        self.assertEqual(p.returncode, 1)
        self.assertIn("5 already parsed, 1 to parse", p.stdout)
        # bad photo removed: nothing left to do
        os.remove(os.path.join(src, "broken.jpg"))
        p = self.run_script(*args)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("5 already parsed, 0 to parse", p.stdout)

    def test_kubernetes_job_pod_script(self):
        """The Indexed Job's container script (deploy/k8s/parse-job.yaml) run here for both shards of a
        2-shard job, with /data and /opt/m2fp pointed at a temporary folder and this checkout."""
        try:
            import yaml
        except ImportError:
            if REQUIRED:
                raise
            self.skipTest("python3-yaml not installed")
        with open(os.path.join(HERE, "k8s", "parse-job.yaml")) as f:
            job = yaml.safe_load(f)
        spec = job["spec"]
        self.assertEqual(spec["completionMode"], "Indexed")
        c = spec["template"]["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in c["env"]}
        self.assertEqual(int(env["SHARDS"]), spec["completions"])
        data = os.path.join(self.tmp, "data")
        os.makedirs(os.path.join(data, "photos", "x"))
        os.makedirs(os.path.join(data, "model"))
        os.symlink(os.path.abspath(kit.CIHP), os.path.join(data, "model", "cihp.safetensors"))
        for i in range(5):
            with open(os.path.join(data, "photos", "x" if i % 2 else "", f"p{i}.png"), "wb") as f:
                f.write(kit.photo(i))
        script = c["args"][0].replace("/data", data).replace("/opt/m2fp", os.path.dirname(HERE))
        script = script.replace("--short-edge 640 --max-size 1333", "--short-edge 64 --max-size 128 --no-outfits")
        for index in range(2):
            shard_env = dict(os.environ, SHARDS="2", THREADS="1", OMP_NUM_THREADS="1",
                             JOB_COMPLETION_INDEX=str(index), M2FP_BIN=os.path.abspath(kit.BIN))
            p = subprocess.run(["bash", "-c", script.replace("/tmp/shard", os.path.join(self.tmp, f"shard{index}"))],
                               env=shard_env, capture_output=True, text=True, timeout=600)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn(f"{3 if index == 0 else 2} photos", p.stdout)
        parsed = sorted(d for d in os.listdir(os.path.join(data, "parsed")) if not d.endswith(".tsv"))
        self.assertEqual(parsed, [f"p{i}" for i in range(5)])
        self.assertTrue(os.path.exists(os.path.join(data, "parsed", "joblog-0.tsv")))
        self.assertTrue(os.path.exists(os.path.join(data, "parsed", "joblog-1.tsv")))

    def test_duplicate_names_and_usage(self):
        src = os.path.join(self.tmp, "dups")
        os.makedirs(os.path.join(src, "a"))
        os.makedirs(os.path.join(src, "b"))
        for d in ("a", "b"):
            with open(os.path.join(src, d, "same.png"), "wb") as f:
                f.write(kit.photo(1))
        p = self.run_script("--in", src, "--out", os.path.join(self.tmp, "o"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("must be unique", p.stderr)
        self.assertIn("same", p.stderr)
        p = subprocess.run(["bash", SCRIPT, "--in", src], capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn("are required", p.stderr)


if __name__ == "__main__":
    unittest.main()
