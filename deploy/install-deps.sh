#!/usr/bin/env bash
# Installs the Debian 12 packages Parley builds, runs and tests with.
# Idempotent: installs only what is missing, so `make run` can call it every time.
set -euo pipefail

packages=(
    build-essential cmake pkg-config git
    libzmq3-dev libczmq-dev libwebsockets-dev libmsgpack-dev
    libev-dev libwebsockets-evlib-ev
    libssl-dev openssl libnss3-tools
    libsodium-dev libsqlite3-dev sqlite3 libyajl-dev
    libmongoc-dev libbson-dev
    libcmocka-dev
    clang libclang-rt-14-dev
    chromium fonts-noto-color-emoji
    curl procps
    prometheus
)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

# Node may come from another source that bundles npm; ask for Debian's only when absent.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "deploy/install-deps.sh: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
