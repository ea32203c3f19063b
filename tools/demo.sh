#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Set up and run Tern on the embedded demo config: installs what is missing, builds,
# and runs ternd in the foreground on 127.0.0.1:5300 (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
dir=$(tools/build.sh)
cat <<TXT
Tern is starting on 127.0.0.1:5300 (and [::1]:5300). In another terminal try:
  dig @127.0.0.1 -p 5300 www.example.org A
  dig @127.0.0.1 -p 5300 example.org MX
  dig @127.0.0.1 -p 5300 nope.example.org A        # NXDOMAIN with SOA
  dig @127.0.0.1 -p 5300 +tcp anything.wild.example.org TXT
  curl -s http://127.0.0.1:9153/metrics | grep coredns_dns_requests_total
  curl -s http://127.0.0.1:8181/ready
TXT
exec "$dir/daemon/ternd" --config tools/demo/ternd.yaml
