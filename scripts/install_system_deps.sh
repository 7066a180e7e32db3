#!/usr/bin/env bash
# System libraries twingap needs from Debian: Mesa's EGL + llvmpipe for headless OpenGL
# rendering on a CPU. Installs only what is missing; needs root (or sudo) the first time.
set -euo pipefail
need=()
ldconfig -p | grep -q 'libEGL_mesa.so.0' || need+=(libegl-mesa0)
ldconfig -p | grep -q 'libEGL.so.1' || need+=(libegl1)
ldconfig -p | grep -q 'libgbm.so.1' || need+=(libgbm1)
[ -e /usr/lib/x86_64-linux-gnu/dri/swrast_dri.so ] || [ -e /usr/lib/aarch64-linux-gnu/dri/swrast_dri.so ] || need+=(libgl1-mesa-dri)
if [ ${#need[@]} -eq 0 ]; then
  echo "system deps: EGL/Mesa present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "system deps: installing ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
