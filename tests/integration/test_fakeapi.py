#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Runs the fake Kubernetes API server's self-test (tools/fake-apiserver/test_selftest.py).

The kubernetes integration tests drive ternd against that server, so its list, watch,
410, bookmark, auth, TLS and fault-injection behaviour is checked here on its own first.
It needs no ternd; TERN_SOURCE_ROOT locates the tools folder (default: two levels up).
"""

import os
import sys

ROOT = os.environ.get("TERN_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "fake-apiserver"))

import test_selftest  # noqa: E402

if __name__ == "__main__":
    sys.exit(test_selftest.main(sys.argv[1:]))
