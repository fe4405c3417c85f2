// WHIP publisher: a screen share or a camera, sent to POST /whip (non-trickle ICE), with the
// page's bearer token (auth.js; the publisher role).

import { authHeaders, refusal } from "./auth.js";

const $ = (id) => document.getElementById(id);
const statusEl = $("status");
let pc = null;
let resource = null;
let stream = null;

function constraints() {
  const [width, height] = $("size").value.split("x").map(Number);
  const frameRate = Number($("fps").value) || 30;
  return { width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: frameRate } };
}

async function publish(getStream) {
  await stop();
  try {
    stream = await getStream();
  } catch (e) {
    statusEl.textContent = `no media: ${e}`;
    return;
  }
  $("preview").srcObject = stream;
  const track = stream.getVideoTracks()[0];
  track.contentHint = "detail";
  track.onended = () => stop();
  pc = new RTCPeerConnection({ iceServers: [] });
  pc.addTransceiver(track, { direction: "sendonly" });
  pc.onconnectionstatechange = () => (statusEl.textContent = `publishing: ${pc && pc.connectionState}`);
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    const timer = setTimeout(resolve, 2000);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const resp = await fetch("whip", {
    method: "POST",
    headers: authHeaders({ "Content-Type": "application/sdp" }),
    body: pc.localDescription.sdp,
  });
  const body = await resp.text();
  if (resp.status !== 201) {
    statusEl.textContent = `refused: ${refusal(resp.status, body)}`;
    await stop();
    return;
  }
  resource = new URL(resp.headers.get("Location"), location.href).href;
  await pc.setRemoteDescription({ type: "answer", sdp: body });
  $("stop").disabled = false;
}

async function stop({ keepalive = false } = {}) {
  if (resource) {
    fetch(resource, { method: "DELETE", keepalive, headers: authHeaders() }).catch(() => {});
    resource = null;
  }
  if (pc) pc.close();
  pc = null;
  if (stream) stream.getTracks().forEach((t) => t.stop());
  stream = null;
  $("stop").disabled = true;
  statusEl.textContent = "idle";
}

$("screen").onclick = () =>
  publish(() => navigator.mediaDevices.getDisplayMedia({ video: constraints(), audio: false }));
$("camera").onclick = () =>
  publish(() => navigator.mediaDevices.getUserMedia({ video: constraints(), audio: false }));
$("stop").onclick = () => stop();
window.addEventListener("pagehide", () => stop({ keepalive: true }));
window.framesmithPublish = { publish, stop, get pc() { return pc; } };
