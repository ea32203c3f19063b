#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Install (with apt-get, on Debian 12) every package Tern needs to build, test and
# benchmark. Idempotent: does nothing when everything is already there.
set -euo pipefail

BUILD_PKGS=(gcc pkg-config meson ninja-build libknot-dev liburcu-dev
	libcyaml-dev libyaml-dev libjemalloc-dev libmicrohttpd-dev libcriterion-dev
	libcurl4-openssl-dev libyajl-dev libgnutls28-dev)
TEST_PKGS=(python3 knot-dnsutils dnsutils dnsperf knot prometheus curl valgrind iproute2
	pdns-server pdns-backend-bind unbound openssl
	nsd knot-resolver dnsmasq pdns-recursor)

missing=()
for p in "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
echo "deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The knot package enables a system knotd; Tern's tests start their own on loopback.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet knot 2>/dev/null; then
	$SUDO systemctl disable --now knot >/dev/null 2>&1 || true
fi
# Same for PowerDNS, Unbound and the bench peers (tests and bench/run.py start their own
# on loopback ports).
for svc in pdns unbound nsd kresd@1 dnsmasq pdns-recursor; do
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
		$SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
	fi
done
