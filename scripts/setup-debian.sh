#!/usr/bin/env bash
# Installs what building and testing burstwatch needs on a fresh Debian/Ubuntu machine,
# each piece only when it is missing: Debian packages (via apt-get, as root or with sudo)
# and a Rust toolchain (via rustup) when cargo is absent.
set -euo pipefail
# Everything this prints is progress, never output: `make run | jq .` sees only JSON.
exec 1>&2

packages=(
    build-essential pkg-config curl ca-certificates fonts-dejavu-core python3 python3-pip
    # GStreamer 1.22: the capture pipelines, the H.264 recorder, and the RTSP test server.
    libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly gstreamer1.0-libav
    # The MQTT output's tests: a real broker and subscriber; systemd-analyze checks the
    # service unit (packaging/burstwatch.service).
    mosquitto mosquitto-clients systemd
    # The web page's tests: a real browser (headless) and Prometheus's own tools (promtool
    # and the server, which scrapes a run).
    chromium prometheus
    # The odd streams' tests: files made by another muxer and other encoders than ours.
    ffmpeg
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
    echo "setup: installing the Rust toolchain with rustup" >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
fi
