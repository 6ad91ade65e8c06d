"""The API's description against the real server: GET /openapi.json is docs/openapi.json byte for
byte, an OpenAPI 3.1 document whose schemas are valid JSON Schema 2020-12 and whose paths are exactly
the routes of app/server/routes.cpp; real answers of every route (successes and errors, /batch with a
failed photo, jobs, a single-person model) validate against the schema it declares for their status.
And the default --max-pixels (24 MP) refuses a larger photo from its header.

Run by CTest (test `server_cli`, beside test_cli_serve.py) with M2FP_BIN and M2FP_TESTDATA; needs
python3-jsonschema (scripts/deps.sh).
"""
import json
import os
import re
import struct
import time
import unittest
import zlib

from jsonschema import Draft202012Validator, RefResolver

from test_cli_serve import BIN, CIHP, LIP, Serve, fresh_dir, http, multipart, photo_png

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC_PATH = os.path.join(ROOT, "docs", "openapi.json")
ROUTES = os.path.join(ROOT, "app", "server", "routes.cpp")


def load_doc():
    with open(DOC_PATH, "rb") as f:
        return f.read()


def png_header_claiming(w, h):
    """A PNG signature and IHDR (correct CRC) claiming w x h RGB, then a tiny IDAT and IEND."""
    def chunk(t, data):
        return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", b"\0" * 16) + chunk(b"IEND", b""))


class Contract:
    """Validates answers against the schema docs/openapi.json declares for (path, method, status)."""

    def __init__(self, doc):
        self.doc = doc
        self.resolver = RefResolver(base_uri="", referrer=doc)
        self.seen = set()

    def deref(self, node):
        while isinstance(node, dict) and "$ref" in node:
            node = self.resolver.resolve(node["$ref"])[1]
        return node

    def check(self, test, path, method, status, body):
        op = self.doc["paths"][path][method]
        test.assertIn(str(status), op["responses"], f"{method.upper()} {path} answered {status}, not declared")
        resp = self.deref(op["responses"][str(status)])
        schema = resp["content"]["application/json"]["schema"]
        answer = json.loads(body)
        errors = sorted(Draft202012Validator(schema, resolver=self.resolver).iter_errors(answer),
                        key=lambda e: list(e.path))
        test.assertEqual([], [f"{'/'.join(map(str, e.path))}: {e.message[:300]}" for e in errors[:5]],
                         f"{method.upper()} {path} {status} does not match docs/openapi.json")
        self.seen.add((path, method, status))
        return answer


@unittest.skipUnless(os.path.exists(BIN), f"{BIN} not built")
class OpenApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.doc = json.loads(load_doc())
        cls.contract = Contract(cls.doc)

    def test_document_is_openapi_3_1_with_valid_schemas(self):
        self.assertTrue(self.doc["openapi"].startswith("3.1."))
        for name, schema in self.doc["components"]["schemas"].items():
            Draft202012Validator.check_schema(schema)
        # every $ref resolves
        refs = set(re.findall(r'"\$ref": "([^"]+)"', json.dumps(self.doc)))
        for r in refs:
            self.contract.deref({"$ref": r})

    def test_paths_are_the_routes_table(self):
        with open(ROUTES) as f:
            src = f.read()
        routes = set()
        for method, raw, plain in re.findall(r'http\.(Get|Post)\(\s*(?:R"\((.*?)\)"|"([^"]*)")', src):
            path = plain or raw
            path = {r"/([A-Za-z0-9_-]+\.(html|js|css|svg|png|ico))": "/{file}",
                    r"/jobs/([A-Za-z0-9]+)": "/jobs/{id}"}.get(path, path)
            routes.add((path, method.lower()))
        documented = {(p, m) for p, ops in self.doc["paths"].items() for m in ops}
        self.assertEqual(routes, documented)

    def test_real_answers_match_their_schemas(self):
        d = fresh_dir("openapi")
        s = Serve(["--catalog", os.path.join(d, "shop.db")])
        c = self.contract
        try:
            code, body = http(s.url + "/openapi.json")
            self.assertEqual(code, 200)
            self.assertEqual(body, load_doc(), "GET /openapi.json must be docs/openapi.json as built")
            code, body = http(s.url + "/health")
            h = c.check(self, "/health", "get", code, body)
            self.assertEqual(h["limits"]["max_pixels"], 24_000_000, "the default --max-pixels")

            a, b = photo_png(1), photo_png(2, (64, 80))
            mp = lambda *fields: multipart(list(fields))
            img = lambda data, name="p.png": ("image", data, name)
            code, body = http(s.url + "/predict", *mp(img(a)))
            p = c.check(self, "/predict", "post", code, body)
            self.assertEqual(code, 200)
            self.assertTrue(p["model"]["synthetic"])
            code, body = http(s.url + "/predict?mask_format=rle&label_set=atr&masks_union=upper_body,hair"
                              "&mask_dilate=2&smooth_edges=1&refine=dark,small&short_edge=48", *mp(img(a)))
            p = c.check(self, "/predict", "post", code, body)
            self.assertEqual(p["options"]["short_edge"], 48)
            self.assertIn("refinements", p)
            code, body = http(s.url + "/predict?mask_format=none", *mp(img(b)))
            self.assertNotIn("masks", c.check(self, "/predict", "post", code, body))

            code, body = http(s.url + "/batch?mask_format=rle", *mp(img(a), img(b), img(b"GIF89a......", "x.gif")))
            bt = c.check(self, "/batch", "post", code, body)
            self.assertEqual(code, 200)
            self.assertEqual([r.get("status") for r in bt["results"]], [None, None, 415])
            self.assertEqual((bt["count"], bt["failed"]), (3, 1))

            code, body = http(s.url + "/recommend?k=2&style=casual", *mp(img(a)))
            r = c.check(self, "/recommend", "post", code, body)
            code, body = http(s.url + "/recommend", *mp(("sha256", r["image"]["sha256"].encode(), None),
                                                        ("occasion", b"office", None)))
            c.check(self, "/recommend", "post", code, body)

            jobs = []
            for task in ("predict", "recommend"):
                code, body = http(s.url + f"/jobs?task={task}&mask_format=rle", *mp(img(photo_png(7))))
                self.assertEqual(code, 202)
                jobs.append(c.check(self, "/jobs", "post", code, body)["id"])
            for jid in jobs:
                for _ in range(3000):
                    code, body = http(s.url + "/jobs/" + jid)
                    st = c.check(self, "/jobs/{id}", "get", code, body)
                    if st["state"] in ("done", "failed"):
                        break
                    time.sleep(0.1)
                self.assertEqual(st["state"], "done")

            # errors: each with the status the description declares for that route
            for path, (code, body) in {
                "/predict": http(s.url + "/predict?short_edge=9999", *mp(img(a))),
                "/batch": http(s.url + "/batch", *mp(("k", b"1", None))),
                "/jobs": http(s.url + "/jobs?task=dance", *mp(img(a))),
                "/recommend": http(s.url + "/recommend?style=gothic", *mp(img(a))),
            }.items():
                self.assertEqual(code, 400, body)
                c.check(self, path, "post", code, body)
            code, body = http(s.url + "/predict", *mp(img(a), img(b)))
            self.assertIn("POST /batch", c.check(self, "/predict", "post", code, body)["error"])
            code, body = http(s.url + "/predict", b"hello", "text/plain")
            self.assertEqual(code, 415)
            c.check(self, "/predict", "post", code, body)
            code, body = http(s.url + "/jobs/0123456789abcdef")
            self.assertEqual(code, 404)
            c.check(self, "/jobs/{id}", "get", code, body)
            code, body = http(s.url + "/recommend", *mp(("sha256", b"a" * 64, None)))
            self.assertEqual(code, 404)
            c.check(self, "/recommend", "post", code, body)
            # the default --max-pixels: 24 MP; a header claiming 5000 x 5000 is refused before decoding
            code, body = http(s.url + "/predict", png_header_claiming(5000, 5000), "image/png")
            self.assertIn("more than the limit of 24000000", c.check(self, "/predict", "post", code, body)["error"])
            code, body = http(s.url + "/predict", png_header_claiming(6000, 4000), "image/png")
            err = c.check(self, "/predict", "post", code, body)["error"]
            self.assertNotIn("more than the limit", err, "exactly 24 MP passes the header check (then fails to decode)")
        finally:
            s.stop()

    def test_single_person_answers_match_too(self):
        d = fresh_dir("openapi_lip")
        s = Serve(["--catalog", os.path.join(d, "shop.db")], model=LIP)
        try:
            code, body = http(s.url + "/batch", *multipart([("image", photo_png(3), "a.png"),
                                                             ("image", photo_png(4), "b.png")]))
            bt = self.contract.check(self, "/batch", "post", code, body)
            self.assertEqual(bt["failed"], 0)
            self.assertEqual(bt["results"][0]["model"]["mode"], "single-person")
        finally:
            s.stop()


if __name__ == "__main__":
    unittest.main()
