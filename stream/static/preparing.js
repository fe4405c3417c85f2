// A model being made ready on the server (stream/preparing.py): until it is, a cheap mode
// (edge, else planar) serves, and one line on the picture says what is being prepared and how
// far, e.g. "preparing upscale.onnx: choosing kernels 3/7 (edge meanwhile)". Fed by the
// server: the hello's "preparing" and a {"type": "preparing"} message at each step; it goes
// at "ready". Text only (textContent): nothing the server sends is read as markup.

let line = null;

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
  if (!busy) return;
  const count = p.total ? ` ${p.done}/${p.total}` : "";
  const since = typeof p.elapsed_s === "number" ? `, ${Math.round(p.elapsed_s)} s` : "";
  line.textContent = `preparing ${p.model || "the model"}: ${p.phase}${count} (${p.serving} meanwhile${since})`;
}
