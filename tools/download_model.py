#!/usr/bin/env python3
"""Download an M2FP checkpoint from ModelScope and convert it to safetensors for m2fp.cpp.

Usage:
    python3 tools/download_model.py {cihp|lip} -o DIR [--endpoint URL] [--revision master]
                                    [--timeout SECONDS] [--retries N] [--no-convert]

    cihp  damo/cv_resnet101_image-multiple-human-parsing   (CIHP, multi-person)
    lip   damo/cv_resnet101_image-single-human-parsing     (LIP, single person)

Standard library only (urllib, hashlib, json): no modelscope, no torch. The conversion is
tools/convert_weights.py's ``convert()``, imported from beside this file.

Protocol (ModelScope's file API)
--------------------------------
The endpoint is ``https://www.modelscope.cn``, or the environment variable
``M2FP_MODELSCOPE_ENDPOINT`` (a full URL, http allowed: a mirror or a local stand-in), or
``--endpoint`` (which wins over both).

    GET {endpoint}/api/v1/models/{model_id}/repo/files?Revision={revision}&Recursive=True
        -> JSON {"Code": 200, "Data": {"Files": [{"Path", "Size", "Sha256", "Type", ...}, ...]}}
    GET {endpoint}/api/v1/models/{model_id}/repo?Revision={revision}&FilePath={Path}
        -> the file's bytes; with ``Range: bytes=N-`` a resumed download (206 + Content-Range).

Only the files the conversion needs are fetched (``REQUIRED_FILES``); the listing's other
entries (README.md, images, ...) are counted and skipped, and a listing without the required
files is refused. Each file is checked against the listing: its size, and its SHA-256 when the
listing gives one.

Folder layout
-------------
    DIR/<name>/configuration.json      verified copies (name: cihp or lip), a ModelScope-like
    DIR/<name>/pytorch_model.pt        model folder that tools/convert_weights.py reads
    DIR/<name>/<file>.part             a download in progress: bytes [0, N) of <file>; renamed to
                                       <file> only once its size and SHA-256 match the listing
    DIR/m2fp_<name>.safetensors        the converted model (written to a temporary name and
                                       renamed by convert_weights.convert)

A rerun skips verified files (size and SHA-256 match the listing) and resumes a ``.part`` file
with ``Range: bytes=N-`` (a server that answers 200 instead of 206 restarts that file). A
connection cut mid-file is retried in the same run (``--retries``, resuming each time); when
the retries are spent the ``.part`` file stays for the next run.

Failures (exit status 1, one message on stderr naming the URL or the file and what to do):
the endpoint cannot be reached, an HTTP error (404: wrong model id or revision), a listing
that is not what this tool expects, a size or SHA-256 mismatch (the bad file is deleted), a
conversion error. Neither ``DIR/<name>/<file>`` nor the ``.safetensors`` is ever half-written.
Usage errors exit with status 2.
"""

import argparse
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import http.client

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import convert_weights  # noqa: E402  (the conversion: folder -> safetensors, atomic)

DEFAULT_ENDPOINT = "https://www.modelscope.cn"
ENDPOINT_ENV = "M2FP_MODELSCOPE_ENDPOINT"
MODELS = {
    "cihp": "damo/cv_resnet101_image-multiple-human-parsing",
    "lip": "damo/cv_resnet101_image-single-human-parsing",
}
REQUIRED_FILES = ("configuration.json", "pytorch_model.pt")   # fetched in this order
USER_AGENT = "m2fp.cpp-download_model/1.0"
CHUNK = 1 << 20
MANUAL_WAY = ("download on a connected machine and convert with tools/convert_weights.py "
              "(README.md: Using the real checkpoint)")


class DownloadError(Exception):
    """A network, protocol or verification failure; the message says what, where and what to do."""


class CutConnection(DownloadError):
    """The transfer stopped before the end of the file; the .part file can be resumed."""


# ------------------------------------------------------------------------------------------------
# URLs and HTTP
# ------------------------------------------------------------------------------------------------

def listing_url(endpoint, model_id, revision):
    query = urllib.parse.urlencode([("Revision", revision), ("Recursive", "True")])
    return "%s/api/v1/models/%s/repo/files?%s" % (endpoint, urllib.parse.quote(model_id), query)


def file_url(endpoint, model_id, revision, path):
    query = urllib.parse.urlencode([("Revision", revision), ("FilePath", path)])
    return "%s/api/v1/models/%s/repo?%s" % (endpoint, urllib.parse.quote(model_id), query)


def open_url(url, timeout, offset=0):
    """urlopen with our User-Agent (and a Range header when offset > 0). Errors become
    DownloadError: HTTP status errors name the status, unreachable hosts say so."""
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = "bytes=%d-" % offset
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        hint = ("check the model id and --revision" if e.code == 404
                else "try again later, or %s" % MANUAL_WAY)
        raise DownloadError("GET %s: HTTP %d %s; %s" % (url, e.code, e.reason, hint))
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        host = "%s://%s" % urllib.parse.urlsplit(url)[:2]
        raise DownloadError("cannot reach %s: %s; %s" % (host, reason, MANUAL_WAY))


# ------------------------------------------------------------------------------------------------
# Listing
# ------------------------------------------------------------------------------------------------

def fetch_listing(endpoint, model_id, revision, timeout):
    """{Path: {"Size": int, "Sha256": str or None}} of the files in the listing (no folders)."""
    url = listing_url(endpoint, model_id, revision)
    with open_url(url, timeout) as r:
        try:
            body = r.read()
        except (OSError, http.client.HTTPException) as e:
            raise DownloadError("GET %s: the listing was cut: %s; try again" % (url, e))
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise DownloadError("GET %s: the answer is not JSON (%d bytes starting %r); is %s a "
                            "ModelScope endpoint?" % (url, len(body), body[:60], endpoint))
    if not isinstance(doc, dict):
        raise DownloadError("GET %s: unexpected listing (a JSON %s)" % (url, type(doc).__name__))
    if doc.get("Success") is False or doc.get("Code", 200) != 200:
        raise DownloadError("GET %s: ModelScope says %s: %s; check the model id and --revision"
                            % (url, doc.get("Code"), doc.get("Message")))
    files = (doc.get("Data") or {}).get("Files") if isinstance(doc.get("Data"), dict) else None
    if not isinstance(files, list):
        raise DownloadError("GET %s: unexpected listing: no Data.Files array" % url)
    listing = {}
    for f in files:
        if not isinstance(f, dict) or f.get("Type", "blob") == "tree":
            continue
        path, size, sha = f.get("Path"), f.get("Size"), f.get("Sha256")
        if not isinstance(path, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise DownloadError("GET %s: unexpected listing entry %s" % (url, json.dumps(f)[:200]))
        listing[path] = {"Size": size, "Sha256": sha.lower() if isinstance(sha, str) and sha else None}
    return listing


def select_files(listing, model_id, url):
    """The REQUIRED_FILES entries of the listing, in order; DownloadError names the missing ones."""
    missing = [p for p in REQUIRED_FILES if p not in listing]
    if missing:
        raise DownloadError("the listing of %s (%s) has no %s: not an M2FP checkpoint folder; check "
                            "the model id and --revision" % (model_id, url, " and no ".join(missing)))
    return [(p, listing[p]) for p in REQUIRED_FILES]


def fmt_size(n):
    return "%.1f MB" % (n / 1e6) if n >= 100000 else "%d bytes" % n


# ------------------------------------------------------------------------------------------------
# One file: verify, resume, download
# ------------------------------------------------------------------------------------------------

def sha256_of(path, h=None):
    h = h or hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h


def is_verified(path, entry):
    """True when `path` exists with the listing's size and SHA-256 (size only if it gives none)."""
    if not os.path.isfile(path) or os.path.getsize(path) != entry["Size"]:
        return False
    return entry["Sha256"] is None or sha256_of(path).hexdigest() == entry["Sha256"]


def remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


class Progress(object):
    """A progress bar on stderr when it is a terminal; a plain line per 10% otherwise."""

    def __init__(self, name, total, done=0, stream=None):
        self.name, self.total, self.stream = name, max(total, 1), stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start, self.start_done = time.time(), done
        self.last_decile = done * 10 // self.total
        self.last_draw = 0.0
        self.update(done)

    def update(self, done):
        if self.tty:
            now = time.time()
            if now - self.last_draw < 0.1 and done < self.total:
                return
            self.last_draw = now
            frac = done / self.total
            rate = (done - self.start_done) / max(now - self.start, 1e-3) / 1e6
            bar = "#" * int(frac * 30)
            self.stream.write("\r  %-20s [%-30s] %3d%%  %s of %s  %.1f MB/s "
                              % (self.name, bar, frac * 100, fmt_size(done), fmt_size(self.total), rate))
            self.stream.flush()
        else:
            decile = done * 10 // self.total
            if decile > self.last_decile:
                self.last_decile = decile
                self.stream.write("  %s: %d%% (%s of %s)\n"
                                  % (self.name, decile * 10, fmt_size(done), fmt_size(self.total)))
                self.stream.flush()

    def finish(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def resume_offset(part, entry):
    """Bytes of `part` worth keeping (0 restarts: no file, or longer than the listing says)."""
    have = os.path.getsize(part) if os.path.isfile(part) else 0
    if have > entry["Size"]:
        remove_quietly(part)
        return 0
    return have


def answer_offset(response, offset, url):
    """Where the response's body starts in the file: `offset` for a matching 206, 0 for a 200
    (the server ignored Range: the file restarts)."""
    if not offset or response.status == 200:
        return 0
    content_range = response.headers.get("Content-Range", "")
    if response.status == 206 and content_range.startswith("bytes %d-" % offset):
        return offset
    raise DownloadError("GET %s: asked for bytes %d-, got HTTP %d with Content-Range %r"
                        % (url, offset, response.status, content_range))


def transfer(url, part, entry, timeout, name):
    """Appends the rest of the file to `part` (from its current size); returns the SHA-256 hasher
    of the whole file. CutConnection when the body ends early (the .part keeps what came)."""
    offset = resume_offset(part, entry)
    if offset == entry["Size"]:
        return sha256_of(part)
    if offset:
        print("  %s: resuming at %s of %s" % (name, fmt_size(offset), fmt_size(entry["Size"])))
    with open_url(url, timeout, offset) as r:
        start = answer_offset(r, offset, url)
        if offset and not start:
            print("  %s: the server ignored the Range request; restarting the file" % name)
        length = r.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) != entry["Size"] - start:
            remove_quietly(part)
            raise DownloadError("%s: the server sends %s bytes from byte %d, the listing says the file has "
                                "%d (%s); rerun, the listing may have changed"
                                % (name, length, start, entry["Size"], url))
        h = sha256_of(part) if start else hashlib.sha256()
        done = start
        progress = Progress(name, entry["Size"], done)
        try:
            with open(part, "ab" if start else "wb") as f:
                while done < entry["Size"]:
                    try:
                        block = r.read(min(CHUNK, entry["Size"] - done))
                    except (OSError, http.client.HTTPException) as e:
                        raise CutConnection("the connection to %s broke after %s of %s (%s)"
                                            % (url, fmt_size(done), fmt_size(entry["Size"]), e))
                    if not block:
                        raise CutConnection("the connection to %s closed after %s of %s"
                                            % (url, fmt_size(done), fmt_size(entry["Size"])))
                    f.write(block)
                    h.update(block)
                    done += len(block)
                    progress.update(done)
        finally:
            progress.finish()
    return h


def fetch_file(endpoint, model_id, revision, path, entry, folder, timeout, retries):
    """Makes folder/path a verified copy of the listing's entry (skipped when it already is)."""
    final = os.path.join(folder, path)
    part = final + ".part"
    if is_verified(final, entry):
        remove_quietly(part)
        print("  %s: already downloaded and verified" % path)
        return final
    url = file_url(endpoint, model_id, revision, path)
    for attempt in range(retries + 1):
        try:
            h = transfer(url, part, entry, timeout, path)
            break
        except CutConnection as e:
            if attempt == retries:
                raise DownloadError("%s; the %s of it downloaded so far is kept in %s: rerun the same "
                                    "command to resume" % (e, fmt_size(os.path.getsize(part)), part))
            print("  %s: %s; retrying (%d of %d)" % (path, e, attempt + 1, retries), file=sys.stderr)
            time.sleep(min(2 ** attempt, 10))
    got = h.hexdigest()
    if entry["Sha256"] is not None and got != entry["Sha256"]:
        remove_quietly(part)
        raise DownloadError("%s: SHA-256 mismatch: expected %s (the listing), got %s (%s); the bad "
                            "download was deleted: rerun to fetch it again, or %s"
                            % (path, entry["Sha256"], got, url, MANUAL_WAY))
    if entry["Sha256"] is None:
        print("  %s: the listing gives no SHA-256: checked its size only" % path)
    os.replace(part, final)
    return final


# ------------------------------------------------------------------------------------------------
# The command
# ------------------------------------------------------------------------------------------------

def download(name, out_dir, endpoint, revision="master", timeout=30.0, retries=3, convert=True):
    """Fetches model `name` into out_dir/<name>/ and converts it; returns the path of the result
    (the .safetensors, or the folder with convert=False)."""
    model_id = MODELS[name]
    url = listing_url(endpoint, model_id, revision)
    print("listing %s (revision %s) at %s" % (model_id, revision, endpoint))
    listing = fetch_listing(endpoint, model_id, revision, timeout)
    wanted = select_files(listing, model_id, url)
    for path, entry in wanted:
        print("  %-20s %12s bytes  sha256 %s" % (path, format(entry["Size"], ","), entry["Sha256"] or "-"))
    skipped = len(listing) - len(wanted)
    if skipped:
        print("  (%d other file%s in the listing not needed, skipped)" % (skipped, "s" * (skipped > 1)))
    folder = os.path.join(out_dir, name)
    os.makedirs(folder, exist_ok=True)   # only now: a failed listing leaves nothing behind
    for path, entry in wanted:
        fetch_file(endpoint, model_id, revision, path, entry, folder, timeout, retries)
    print("downloaded %s to %s" % (model_id, folder))
    if not convert:
        return folder
    out = os.path.join(out_dir, "m2fp_%s.safetensors" % name)
    try:
        convert_weights.convert(folder, out)
    except convert_weights.ConvertError as e:
        raise DownloadError("conversion of %s failed: %s" % (folder, e))
    except Exception as e:   # an input the converter did not foresee: its message, no traceback
        raise DownloadError("conversion of %s failed: unexpected %s: %s (run tools/convert_weights.py "
                            "%s -o %s --traceback for details)" % (folder, type(e).__name__, e, folder, out))
    if convert_weights.load_configuration(os.path.join(folder, "configuration.json"))[1]:
        print("note: this checkpoint is SYNTHETIC (random weights: its configuration.json has "
              "m2fp_synthetic), not the trained model")
    return out


def endpoint_arg(value):
    value = value.strip().rstrip("/")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError("%r is not an http(s) URL (e.g. %s)" % (value, DEFAULT_ENDPOINT))
    return value


def positive_float(value):
    try:
        x = float(value)
    except ValueError:
        x = -1.0
    if not x > 0:
        raise argparse.ArgumentTypeError("%r is not a positive number of seconds" % value)
    return x


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="download_model.py",
        description="Download an M2FP checkpoint from ModelScope (cihp: %s, lip: %s), verify it "
                    "and convert it to DIR/m2fp_<name>.safetensors." % (MODELS["cihp"], MODELS["lip"]))
    ap.add_argument("name", choices=sorted(MODELS), help="which checkpoint")
    ap.add_argument("-o", "--output", required=True, metavar="DIR",
                    help="folder for DIR/<name>/ (the downloaded files) and DIR/m2fp_<name>.safetensors")
    ap.add_argument("--endpoint", type=endpoint_arg, metavar="URL",
                    help="ModelScope endpoint (default: $%s, else %s)" % (ENDPOINT_ENV, DEFAULT_ENDPOINT))
    ap.add_argument("--revision", default="master", help="model revision (default: master)")
    ap.add_argument("--timeout", type=positive_float, default=30.0, metavar="SECONDS",
                    help="connect and read timeout (default: 30)")
    ap.add_argument("--retries", type=int, default=3, metavar="N",
                    help="resume a cut transfer up to N times in this run (default: 3)")
    ap.add_argument("--no-convert", dest="convert", action="store_false",
                    help="download and verify only")
    args = ap.parse_args(argv)
    if args.endpoint is None:
        env = os.environ.get(ENDPOINT_ENV, "").strip()
        try:
            args.endpoint = endpoint_arg(env) if env else DEFAULT_ENDPOINT
        except argparse.ArgumentTypeError as e:
            ap.error("$%s: %s" % (ENDPOINT_ENV, e))
    if args.retries < 0:
        ap.error("--retries must be >= 0")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        ap.error("-o %s exists and is not a folder" % args.output)
    return args


def main(argv=None):
    sys.stdout.reconfigure(line_buffering=True)   # keep stdout and stderr lines in order in logs
    args = parse_args(argv)
    try:
        result = download(args.name, args.output, args.endpoint, args.revision, args.timeout,
                          args.retries, args.convert)
    except DownloadError as e:
        print("download_model.py: error: %s" % e, file=sys.stderr)
        return 1
    except OSError as e:   # the local disk: full, read-only, permissions
        print("download_model.py: error: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("download_model.py: interrupted; a rerun resumes the partial download", file=sys.stderr)
        return 130
    print("done: %s" % result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
