#!/usr/bin/env bash
# Set up everything framesmith needs on a fresh Debian machine: a Vulkan driver (Mesa's
# lavapipe when there is no GPU driver), a virtual environment with the package, its dev and
# train extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
need_apt=()
if ! compgen -G "/usr/share/vulkan/icd.d/*.json" >/dev/null \
  && ! compgen -G "/etc/vulkan/icd.d/*.json" >/dev/null; then
  need_apt+=(mesa-vulkan-drivers libvulkan1)
fi
# the viewer-page browser tests drive Debian's Chromium with playwright (never `playwright
# install`: no downloaded browsers) ...
if ! command -v chromium >/dev/null 2>&1; then
  need_apt+=(chromium)
fi
# ... and Debian's Firefox ESR over Marionette (marionette-driver, no geckodriver)
if ! command -v firefox-esr >/dev/null 2>&1; then
  need_apt+=(firefox-esr)
fi
# WHIP publishers' DTLS runs on the system GnuTLS (stream/webrtc/gnutls.py: FFmpeg's
# secp224r1 key); the interop tests drive GStreamer's webrtcbin under Debian's python3
if ! compgen -G "/usr/lib/*/libgnutls.so.30" >/dev/null; then
  need_apt+=(libgnutls30)
fi
if ! /usr/bin/python3 -c "import gi; gi.require_version('GstWebRTC', '1.0')" 2>/dev/null \
  || ! command -v gst-inspect-1.0 >/dev/null 2>&1 \
  || ! gst-inspect-1.0 x264enc >/dev/null 2>&1 || ! gst-inspect-1.0 avdec_h264 >/dev/null 2>&1 \
  || ! gst-inspect-1.0 nicesrc >/dev/null 2>&1 || ! gst-inspect-1.0 vp8enc >/dev/null 2>&1; then
  need_apt+=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-nice
    python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0)
fi
# remote play (issue 14): the x11 source and its tests need an X server and X clients: Xvfb,
# libX11/libXext (XShm capture through ctypes), xterm, xdotool and xrandr (tests), Xtigervnc
# (a virtual X server that can change size: the resize test)
for x in Xvfb:xvfb xterm:xterm xdotool:xdotool xdpyinfo:x11-utils xrandr:x11-xserver-utils \
  xclock:x11-apps Xtigervnc:tigervnc-standalone-server; do
  if ! command -v "${x%%:*}" >/dev/null 2>&1; then need_apt+=("${x#*:}"); fi
done
if ! ldconfig -p 2>/dev/null | grep -q "libXext.so.6"; then
  need_apt+=(libx11-6 libxext6)
fi
# game audio (issue 26, stream/audio/): parec/pactl capture a PulseAudio (or PipeWire-Pulse)
# server; the tests start their own pulseaudio with a null sink and play into it with pacat
for x in pulseaudio:pulseaudio parec:pulseaudio-utils pacat:pulseaudio-utils; do
  if ! command -v "${x%%:*}" >/dev/null 2>&1; then need_apt+=("${x#*:}"); fi
done
# a real game for the gamepad test (tests/stream/test_supertux_pad.py; ~160 MB of data)
if [ ! -x /usr/games/supertux2 ]; then
  need_apt+=(supertux)
fi
# push sinks (stream/sinks/, issue 18): libsrt for srt:// pushes; the servers the push tests
# talk to (nginx + RTMP module, srt-live-transmit, Janus), started by the tests themselves
push_servers=()
if ! compgen -G "/usr/lib/*/libsrt*.so.1.5" >/dev/null; then
  need_apt+=(libsrt1.5-gnutls)
fi
if [ ! -e /usr/lib/nginx/modules/ngx_rtmp_module.so ]; then
  need_apt+=(nginx libnginx-mod-rtmp); push_servers+=(nginx)
fi
if ! command -v srt-live-transmit >/dev/null 2>&1; then
  need_apt+=(srt-tools)
fi
if ! command -v janus >/dev/null 2>&1; then
  need_apt+=(janus); push_servers+=(janus)
fi
# coturn: tests/test_coturn.py runs docker/compose.yaml's coturn entrypoint and config for real
if ! command -v turnserver >/dev/null 2>&1; then
  need_apt+=(coturn); push_servers+=(coturn)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# the packages enable their own daemons (nginx on port 80); the tests run their own copies
if [ ${#push_servers[@]} -gt 0 ] && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now "${push_servers[@]}" >/dev/null 2>&1 || true
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# torch==2.13.0 (the train extra) is the CPU build where a local wheel is provided.
.venv/bin/python -m pip install -q -e ".[service,plots,train,dev]"
echo "setup: done ($(.venv/bin/python -c 'import infer.device as d; print(d.get_device().name)' 2>/dev/null))"
