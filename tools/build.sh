#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Configure (once) and build one flavour of Tern:
#   tools/build.sh            release-ish build in build/
#   tools/build.sh asan       AddressSanitizer + UBSan build in build-asan/
#   tools/build.sh tsan       ThreadSanitizer build in build-tsan/
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-default}
case "$flavour" in
default) dir=build; opts=() ;;
asan)    dir=build-asan; opts=(-Db_sanitize=address,undefined -Db_lundef=false -Djemalloc=disabled -Dbuildtype=debug) ;;
tsan)    dir=build-tsan; opts=(-Db_sanitize=thread -Db_lundef=false -Djemalloc=disabled -Dbuildtype=debug) ;;
*) echo "usage: $0 [default|asan|tsan]" >&2; exit 2 ;;
esac
if [ ! -f "$dir/build.ninja" ]; then
	meson setup "$dir" "${opts[@]}" >/dev/null
fi
ninja -C "$dir" >/dev/null
echo "$dir"
