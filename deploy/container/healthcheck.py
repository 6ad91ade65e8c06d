#!/usr/bin/env python3
"""deploy/container/healthcheck.py: the container's HEALTHCHECK: GET /health on $M2FP_PORT, 0 when 200."""
import os
import sys
import urllib.request

try:
    with urllib.request.urlopen("http://127.0.0.1:%s/health" % os.environ.get("M2FP_PORT", "5000"), timeout=4) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception as e:  # noqa: BLE001 - any failure is unhealthy
    print(e, file=sys.stderr)
    sys.exit(1)
