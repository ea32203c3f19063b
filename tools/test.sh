#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The one command that sets up and runs every test: installs what is missing, builds
# the default, ASan+UBSan and TSan flavours, runs the whole suite on the first two and
# the threaded integration tests under TSan, and ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh || { echo "0 passed, 1 failed"; exit 1; }

results=()
fail_build=0
run_suite() {  # flavour, meson test args...
	local flavour=$1; shift
	local dir
	if ! dir=$(tools/build.sh "$flavour"); then
		echo "build $flavour: FAILED" >&2
		fail_build=$((fail_build + 1))
		return
	fi
	echo "== tests: $flavour ($dir) ==" >&2
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp" \
		meson test -C "$dir" --print-errorlogs --num-processes 2 "$@" >&2
	results+=("$dir/meson-logs/testlog.json")
}

run_suite default
run_suite asan
run_suite tsan --suite integration

python3 - "$fail_build" "${results[@]}" <<'PY'
import json, sys
failed_builds = int(sys.argv[1])
passed = failed = skipped = 0
for path in sys.argv[2:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        failed += 1
        continue
    for line in lines:
        r = json.loads(line).get("result")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
failed += failed_builds
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed or passed == 0 else 0)
PY
