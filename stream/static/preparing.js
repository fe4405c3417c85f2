// A model being made ready on the server (stream/preparing.py): until it is, a cheap mode
// (edge, else planar) serves, and one line on the picture says what is being prepared and how
// far, e.g. "preparing upscale.onnx: choosing kernels 1/3 (planar meanwhile, 12 s)". Fed by the
// server: the hello's "preparing" and a {"type": "preparing"} message at each step; it goes
// at "ready". The seconds count on between steps (a step can take a minute on a CPU device).
// Text only (textContent): nothing the server sends is read as markup.

let line = null;
let last = null; // the last step, and when it came
let timer = 0;

function render() {
  if (!line || !last) return;
  const p = last.step;
  const count = p.total ? ` ${p.done}/${p.total}` : "";
  const ticking = p.phase !== "failed" ? (performance.now() - last.at) / 1000 : 0;
  const secs = typeof p.elapsed_s === "number" ? p.elapsed_s + ticking : null;
  const since = secs === null ? "" : `, ${Math.round(secs)} s`;
  line.textContent = `preparing ${p.model || "the model"}: ${p.phase}${count} (${p.serving} meanwhile${since})`;
}

export function showPreparing(p) {
  const stage = document.getElementById("stage");
  if (!line && stage) {
    line = document.createElement("div");
    line.id = "preparing";
    line.setAttribute("role", "status");
    Object.assign(line.style, {
      position: "absolute", left: "6px", top: "6px", padding: "4px 8px", background: "#000b",
      color: "#fd8", font: "12px/1.35 ui-monospace, monospace", pointerEvents: "none",
    });
    stage.appendChild(line);
  }
  if (!line) return;
  const busy = !!p && p.phase !== "ready";
  line.hidden = !busy;
  last = busy ? { step: p, at: performance.now() } : null;
  if (busy && !timer) timer = setInterval(render, 1000);
  if (!busy && timer) {
    clearInterval(timer);
    timer = 0;
  }
  render();
}
