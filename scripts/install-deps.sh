#!/bin/sh
# Installs the Debian 12 packages Myelin needs to build and test.
#
# Idempotent: each package is checked with dpkg-query and only the missing
# ones are installed, so a machine that already has everything hears
# nothing from this script and touches no package list. Node.js and npm
# (for tests/js, the matrix-js-sdk end-to-end test, which wants Node 20)
# are checked by command instead: the machines' NodeSource `nodejs`
# package provides and conflicts with Debian's `npm`, so asking dpkg
# about `npm` would try to replace it. Runs as root
# (CI and the development machines are root); it does not use sudo.
set -eu

PACKAGES="
build-essential
meson
ninja-build
pkg-config
clang
libclang-rt-14-dev
libmicrohttpd-dev
libjansson-dev
libsodium-dev
libssl-dev
libcurl4-openssl-dev
libsqlite3-dev
libpq-dev
libfyaml-dev
libvips-dev
libcmocka-dev
postgresql
openssl
python3
python3-pytest
python3-pytest-xdist
python3-matrix-nio
python3-olm
python3-signedjson
python3-nacl
python3-canonicaljson
curl
"
# libclang-rt-14-dev ships libclang_rt.fuzzer*.a, which is what clang 14's
# -fsanitize=fuzzer links; the standalone libfuzzer-14-dev is not needed.

missing=""
for pkg in $PACKAGES; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "installed" ]; then
        missing="$missing $pkg"
    fi
done

command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"

if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing:$missing (run this script as root)" >&2
    exit 1
fi

echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
