#!/usr/bin/env bash
# Installs every Debian 12 package troupe needs to build, test, fuzz and
# benchmark. Idempotent: packages already installed are skipped, and apt is
# not touched at all when nothing is missing.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config git
  clang libclang-rt-14-dev clang-format
  # libraries
  libcaf-dev libucx-dev ucx-utils capnproto libcapnp-dev
  librocksdb-dev libspdlog-dev libfmt-dev libbenchmark-dev doctest-dev
  libtomlplusplus-dev nlohmann-json3-dev libcli11-dev libcpp-httplib-dev
  libssl-dev libhwloc-dev
  # tools the tests use
  iproute2 procps
  libxml2-utils # xmllint: the SVG report tests check well-formedness
)
# promtool (Prometheus metrics checker) comes from the large prometheus
# package; installed without its recommends.
no_recommends=(prometheus)

missing() {
  local out=()
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      out+=("$p")
    fi
  done
  echo "${out[@]:-}"
}

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need=$(missing "${packages[@]}")
need_nr=$(missing "${no_recommends[@]}")
if [ -z "${need// /}" ] && [ -z "${need_nr// /}" ]; then
  echo "install-deps: all packages present"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
if [ -n "${need// /}" ]; then
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq $need
fi
if [ -n "${need_nr// /}" ]; then
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $need_nr
fi
echo "install-deps: done"
