// A minimal WHEP client: one (or two, for compare) recvonly video transceivers, a recvonly
// audio one (the game's sound, when the server has it: else it is answered inactive and no
// track comes) and a data channel, non-trickle ICE (the offer waits for gathering), DELETE
// on close and pagehide.
// Every request carries the page's bearer token (auth.js).

import { authHeaders, refusal } from "./auth.js";

function gatheringDone(pc, timeoutMs = 2000) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

export class WhepSession {
  // relative to the page: the page at /rooms/NAME/ reaches its own room's WHEP endpoint
  constructor({ endpoint = "whep", codec = "vp8", videos = 1, audio = true } = {}) {
    this.endpoint = endpoint;
    this.codec = codec;
    this.videos = videos;
    this.audio = audio;
    this.location = null;
    this.pc = null;
    this.channel = null;
    this.streams = [];
    this.onTrack = () => {};
    this.onAudio = () => {};
    this.onMessage = () => {};
    this.onState = () => {};
    this.onOpen = () => {};
  }

  // STUN/TURN servers (and TURN credentials, maybe minted per request) from the server
  async iceConfig() {
    try {
      const url = new URL("/api/ice", new URL(this.endpoint, location.href));
      const resp = await fetch(url, { headers: authHeaders() });
      if (resp.ok) return await resp.json();
    } catch (e) {
      console.warn("no ICE configuration from the server; host candidates only", e);
    }
    return { iceServers: [] };
  }

  async start() {
    const pc = new RTCPeerConnection(await this.iceConfig());
    this.pc = pc;
    const transceivers = [];
    for (let i = 0; i < this.videos; i++) {
      transceivers.push(pc.addTransceiver("video", { direction: "recvonly" }));
    }
    const audio = this.audio ? pc.addTransceiver("audio", { direction: "recvonly" }) : null;
    for (const t of audio ? [...transceivers, audio] : transceivers) {
      // ask for the smallest playout delay the browser allows
      if ("jitterBufferTarget" in t.receiver) t.receiver.jitterBufferTarget = 0;
      if ("playoutDelayHint" in t.receiver) t.receiver.playoutDelayHint = 0;
    }
    pc.ontrack = (ev) => {
      if (ev.track.kind === "audio") {
        this.onAudio(new MediaStream([ev.track]), ev.receiver);
        return;
      }
      const index = transceivers.indexOf(ev.transceiver);
      // one stream per track: aiortc may put both tracks in one msid stream
      const stream = new MediaStream([ev.track]);
      this.streams[index] = stream;
      this.onTrack(index, stream, ev.receiver);
    };
    pc.onconnectionstatechange = () => this.onState(pc.connectionState);
    this.channel = pc.createDataChannel("control");
    this.channel.onopen = () => this.onOpen();
    this.channel.onmessage = (ev) => {
      try {
        this.onMessage(JSON.parse(ev.data));
      } catch (e) {
        console.warn("bad data channel message", e);
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringDone(pc);
    const url = `${this.endpoint}?codec=${encodeURIComponent(this.codec)}`;
    const resp = await fetch(url, {
      method: "POST",
      headers: authHeaders({ "Content-Type": "application/sdp" }),
      body: pc.localDescription.sdp,
    });
    const body = await resp.text();
    if (resp.status !== 201) throw new Error(`WHEP ${refusal(resp.status, body)}`);
    this.location = new URL(resp.headers.get("Location"), location.href).href;
    await pc.setRemoteDescription({ type: "answer", sdp: body });
  }

  send(obj) {
    if (this.channel && this.channel.readyState === "open") this.channel.send(JSON.stringify(obj));
  }

  // keepalive: the request outlives the page (sendBeacon cannot DELETE)
  close({ keepalive = false } = {}) {
    if (this.location) {
      fetch(this.location, { method: "DELETE", keepalive, headers: authHeaders() }).catch(() => {});
      this.location = null;
    }
    if (this.pc) this.pc.close();
    this.pc = null;
  }
}
