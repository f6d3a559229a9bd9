#!/usr/bin/env bash
# Installs a software WebGPU adapter for Node tests: Mesa's lavapipe (Vulkan on the CPU) from
# bookworm-backports. Stock bookworm Mesa 22.x exposes no adapter Dawn accepts; 25.x does.
# Idempotent: exits early when the backports drivers are already present. Needs root (CI image).
# Usage: .ci/install-webgpu.sh [--chromium]   (--chromium also installs Debian's chromium for
# the browser smoke test). Tests also need XDG_RUNTIME_DIR (set to /tmp when unset).
set -euo pipefail

want_chromium=0
[[ "${1:-}" == "--chromium" ]] && want_chromium=1

backports_installed() {
  # The backports build carries "~bpo" in its version; the stock 22.x does not.
  dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -q 'bpo' &&
    dpkg-query -W -f='${Status}' libvulkan1 2>/dev/null | grep -q 'install ok installed'
}

need_install=1
backports_installed && need_install=0
if [[ $want_chromium == 1 ]] && ! command -v chromium >/dev/null; then need_install=1; fi
if [[ $need_install == 0 ]]; then
  echo "install-webgpu: already installed (lavapipe from bookworm-backports$([[ $want_chromium == 1 ]] && echo ", chromium"))"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
src=/etc/apt/sources.list.d/bookworm-backports.sources
if [[ ! -f $src ]]; then
  cat > "$src" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -qq
if ! backports_installed; then
  apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1
fi
if [[ $want_chromium == 1 ]] && ! command -v chromium >/dev/null; then
  apt-get install -y -qq chromium
fi
echo "install-webgpu: installed $(dpkg-query -W -f='mesa-vulkan-drivers ${Version}' mesa-vulkan-drivers)"
