// The game's sound: played by a muted <audio> element until the viewer unmutes it (browsers
// block autoplay with sound), and a level meter from a WebAudio AnalyserNode on the same
// track. A source with no audio sends no track: the control says so and the page plays on.
// The audio and video tracks share one stream id (aiortc's msid), so the browser's own
// RTCP sender-report sync plays them together whatever element renders each.

export class GameSound {
  constructor({ audio, button, meter }) {
    this.audio = audio;
    this.button = button;
    this.meter = meter;
    this.stream = null;
    this.ctx = null;
    this.analyser = null;
    this.source = null;
    this.samples = null;
    this.level = 0; // RMS of the last analysed block, 0..1 (tests read it)
    this.levels = 0; // blocks analysed
    this.peak = 0; // the loudest level seen
    this.button.addEventListener("click", () => this.toggle());
    this.none();
  }

  // no audio on this connection (yet)
  none() {
    this.stream = null;
    this.audio.srcObject = null;
    this.button.disabled = true;
    this.button.textContent = "no sound";
    this.button.title = "the server sends no game sound";
    this.meter.value = 0;
  }

  attach(stream) {
    this.stream = stream;
    this.audio.srcObject = stream;
    this.audio.muted = true;
    this.audio.play().catch(() => {});
    this.button.disabled = false;
    this.showMuted();
    this.tap();
    const track = stream.getAudioTracks()[0];
    if (track) track.addEventListener("ended", () => this.none());
  }

  showMuted() {
    const muted = this.audio.muted;
    this.button.textContent = muted ? "unmute" : "mute";
    this.button.title = muted ? "play the game's sound" : "silence the game's sound";
    this.button.setAttribute("aria-pressed", String(!muted));
  }

  toggle() {
    if (!this.stream) return;
    this.audio.muted = !this.audio.muted;
    this.audio.play().catch(() => {});
    if (this.ctx && this.ctx.state === "suspended") this.ctx.resume().catch(() => {});
    this.showMuted();
  }

  // the meter: an AnalyserNode fed from the track (not routed to the speakers: the element
  // plays it); the context may start suspended until the first click (autoplay policy)
  tap() {
    try {
      if (!this.ctx) {
        this.ctx = new AudioContext();
        this.analyser = this.ctx.createAnalyser();
        this.analyser.fftSize = 1024;
        this.samples = new Float32Array(this.analyser.fftSize);
        requestAnimationFrame(() => this.measure());
      }
      if (this.source) this.source.disconnect();
      this.source = this.ctx.createMediaStreamSource(this.stream);
      this.source.connect(this.analyser);
      if (this.ctx.state === "suspended") this.ctx.resume().catch(() => {});
    } catch (e) {
      console.warn("no level meter", e);
    }
  }

  measure() {
    if (this.analyser && this.stream) {
      this.analyser.getFloatTimeDomainData(this.samples);
      let sum = 0;
      for (const s of this.samples) sum += s * s;
      this.level = Math.sqrt(sum / this.samples.length);
      this.levels += 1;
      this.peak = Math.max(this.peak, this.level);
      // a log-ish scale: -60 dBFS .. 0 dBFS over the meter
      const db = 20 * Math.log10(Math.max(this.level, 1e-6));
      this.meter.value = Math.max(0, Math.min(1, (db + 60) / 60));
    }
    requestAnimationFrame(() => this.measure());
  }
}
