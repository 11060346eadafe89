#!/usr/bin/env bash
# Installs the Debian packages open3d needs (and Xvfb for off-screen rendering) when missing.
# Idempotent: does nothing when every package is already installed.
set -euo pipefail
PACKAGES=(libusb-1.0-0 libgl1 libegl1 libgomp1 xvfb xauth)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
    echo "pc3d setup: missing system packages ${missing[*]} and no apt-get; install them by hand." >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "pc3d setup: run as root or install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
fi
echo "pc3d setup: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
