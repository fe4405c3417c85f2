#!/usr/bin/python3
"""GStreamer's webrtcbin as a WHIP publisher or a WHEP viewer (Debian 12: GStreamer 1.22).

Run with Debian's /usr/bin/python3 (python3-gi lives in its dist-packages, not in a venv):

    gst_webrtc.py whep URL --codec vp8|h264 --seconds 8
        a recv-only transceiver; every decoded frame prints one JSON line on stdout:
        {"t": unix time, "w", "h", "cw", "ch", "crop": base64 GRAY8 top-left crop} (the crop
        holds the frame marker; the test reads it with stream/sources/marker.py)
    gst_webrtc.py whip URL --codec vp8|h264 [--profile high] --seconds 8 [--size 160x90]
        videotestsrc -> vp8enc / x264enc -> webrtcbin, send-only

Both wait for ICE gathering to finish and POST the complete offer (no trickle), set the
answer, and DELETE the session URL at the end. The last line is a JSON summary: {"done":
true, "status", "location", "states", "frames", "sent", "offer_fmtp", "deleted", "error"}.

Two webrtcbin habits (ANCHORS "Driving GStreamer's webrtcbin"): a recv-only transceiver needs
`ssrc` in its caps or create-offer gives no SDP, and the create-offer reply must stay
referenced while its offer is used.
"""

import argparse
import base64
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

RTP = {
    "vp8": "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000",
    "h264": "application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000",
}
RECV_FMTP = {"vp8": "", "h264": ",packetization-mode=(string)1,profile-level-id=(string)42e01f"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["whep", "whip"])
    ap.add_argument("url")
    ap.add_argument("--codec", default="vp8", choices=sorted(RTP))
    ap.add_argument("--profile", default="constrained-baseline")
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--size", default="160x90")
    ap.add_argument("--fps", type=int, default=15)
    a = ap.parse_args()
    width, height = (int(v) for v in a.size.split("x"))

    Gst.init(None)
    loop = GLib.MainLoop()
    summary = {"done": True, "status": 0, "location": "", "states": [], "frames": 0, "sent": 0}
    summary["error"] = ""
    keep = {}  # the create-offer reply, referenced while its offer is in use

    if a.mode == "whip":
        enc = (
            "vp8enc deadline=1 cpu-used=8 target-bitrate=250000 keyframe-max-dist=15 "
            "! rtpvp8pay pt=96"
            if a.codec == "vp8"
            else "x264enc tune=zerolatency speed-preset=veryfast bitrate=250 key-int-max=15 "
            f"bframes=0 ! video/x-h264,profile={a.profile} "
            "! rtph264pay pt=102 config-interval=-1 aggregate-mode=zero-latency"
        )
        pipe = Gst.parse_launch(
            "webrtcbin name=wb bundle-policy=max-bundle "
            f"videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},"
            f"framerate={a.fps}/1 ! videoconvert ! queue ! {enc} ! identity name=tap ! "
            f"{RTP[a.codec]} ! wb."
        )
        tap = pipe.get_by_name("tap")
        tap.set_property("signal-handoffs", True)
        tap.connect("handoff", lambda *_: summary.__setitem__("sent", summary["sent"] + 1))
    else:
        pipe = Gst.Pipeline.new("whep")
        wb0 = Gst.ElementFactory.make("webrtcbin", "wb")
        wb0.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        pipe.add(wb0)
    wb = pipe.get_by_name("wb")

    def on_sample(sink):
        sample = sink.emit("pull-sample")
        s = sample.get_caps().get_structure(0)
        w, h = s.get_value("width"), s.get_value("height")
        buf = sample.get_buffer()
        ok, info = buf.map(Gst.MapFlags.READ)
        if ok:
            stride = (w + 3) & ~3  # GRAY8 rows are 4-byte aligned
            cw, ch = min(w, 3 * w // 4 + 1), min(h, h // 5 + 1)
            data = bytes(info.data)  # one copy: each .data access copies the buffer
            crop = b"".join(data[y * stride : y * stride + cw] for y in range(ch))
            buf.unmap(info)
            print(
                json.dumps(
                    {
                        "t": time.time(),
                        "w": w,
                        "h": h,
                        "cw": cw,
                        "ch": ch,
                        "crop": base64.b64encode(crop).decode(),
                    }
                ),
                flush=True,
            )
            summary["frames"] += 1
        return Gst.FlowReturn.OK

    def on_decoded(_db, pad):
        if not pad.get_current_caps().to_string().startswith("video/x-raw"):
            return
        sink_bin = Gst.parse_bin_from_description(
            "queue ! videoconvert ! video/x-raw,format=GRAY8 ! "
            "appsink name=sink emit-signals=true sync=false max-buffers=4 drop=false",
            True,
        )
        pipe.add(sink_bin)
        sink_bin.sync_state_with_parent()
        sink_bin.get_by_name("sink").connect("new-sample", on_sample)
        pad.link(sink_bin.get_static_pad("sink"))

    def on_pad(_wb, pad):
        if pad.direction != Gst.PadDirection.SRC:
            return
        db = Gst.ElementFactory.make("decodebin")
        db.connect("pad-added", on_decoded)
        pipe.add(db)
        db.sync_state_with_parent()
        pad.link(db.get_static_pad("sink"))

    def http(method, url, body=None, ctype=None):
        headers = {"Content-Type": ctype} if ctype else {}
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read().decode()

    def on_gathering(_wb, _pspec):
        state = wb.get_property("ice-gathering-state")
        if state != GstWebRTC.WebRTCICEGatheringState.COMPLETE or "posted" in keep:
            return
        keep["posted"] = True
        offer = wb.get_property("local-description").sdp.as_text()
        summary["offer_fmtp"] = [x for x in offer.splitlines() if x.startswith("a=fmtp:")]
        try:
            status, headers, answer = http("POST", a.url, offer.encode(), "application/sdp")
        except (urllib.error.URLError, OSError) as e:
            summary["error"] = f"POST failed: {e}"
            loop.quit()
            return
        summary["status"] = status
        summary["location"] = headers.get("Location", "")
        _, msg = GstSdp.SDPMessage.new_from_text(answer)
        desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
        wb.emit("set-remote-description", desc, Gst.Promise.new())

    def on_offer(promise, _):
        reply = promise.get_reply()
        keep["reply"] = reply
        keep["offer"] = reply.get_value("offer")
        wb.emit("set-local-description", keep["offer"], Gst.Promise.new())

    def negotiate(*_):
        if "started" not in keep:
            keep["started"] = True
            wb.emit("create-offer", None, Gst.Promise.new_with_change_func(on_offer, None))
        return False

    def on_state(w, _pspec):
        summary["states"].append(w.get_property("connection-state").value_nick)

    wb.connect("notify::ice-gathering-state", on_gathering)
    wb.connect("notify::connection-state", on_state)
    if a.mode == "whep":
        wb.connect("pad-added", on_pad)
        caps = Gst.Caps.from_string(RTP[a.codec] + RECV_FMTP[a.codec] + ",ssrc=(uint)1234")
        wb.emit("add-transceiver", GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY, caps)
        GLib.idle_add(negotiate)
    else:
        wb.connect("on-negotiation-needed", negotiate)

        def send_only():
            t = wb.emit("get-transceiver", 0)
            if t is not None:
                t.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
            return False

        GLib.idle_add(send_only)

    def on_message(_bus, m):
        if m.type == Gst.MessageType.ERROR:
            err, dbg = m.parse_error()
            summary["error"] = f"{err.message} ({dbg})"[:500]
            loop.quit()

    bus = pipe.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    pipe.set_state(Gst.State.PLAYING)
    GLib.timeout_add(int(a.seconds * 1000), loop.quit)
    loop.run()
    if summary["location"]:
        try:
            base = urllib.parse.urljoin(a.url, summary["location"])
            summary["deleted"] = http("DELETE", base)[0]
        except (urllib.error.URLError, OSError) as e:
            summary["deleted"] = str(e)
    pipe.set_state(Gst.State.NULL)
    print(json.dumps(summary), flush=True)
    return 1 if summary["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
