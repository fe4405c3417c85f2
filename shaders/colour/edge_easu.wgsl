{# Edge-adaptive upsampling (the `edge` mode's first pass): AMD FidelityFX Super Resolution
   1.0's EASU, written from its published description (GPUOpen, 2021; MIT). RGB tensor
   (channels last, padded to 4) of in_width x in_height -> out_width x out_height.
   Per output pixel: the 12 texels around it (b c / e f g h / i j k l / n o), their luma
   (R/2 + G + B/2) gives a '+' gradient at f, g, j, k, blended bilinearly into an edge
   direction and an edgeness; a Lanczos-2-like polynomial kernel is turned along the edge,
   stretched along it and squeezed across it with the edgeness, and its result clamped to the
   min/max of f, g, j, k. Operation for operation the same as infer/training/edge_adaptive.py
   (the reference tests/stream/test_edge_mode.py holds this pass to). #}
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;

const IW: i32 = {{ in_width }};
const IH: i32 = {{ in_height }};
const OW: i32 = {{ out_width }};
const OH: i32 = {{ out_height }};

fn texel(x: i32, y: i32) -> vec3<f32> {
  return src[u32(clamp(y, 0, IH - 1) * IW + clamp(x, 0, IW - 1))].xyz;
}

fn luma2(c: vec3<f32>) -> f32 {
  return c.z * 0.5 + (c.x * 0.5 + c.y);
}

// the '+' around c (a above, b left, d right, e below): dir x, dir y, edgeness
fn gradient(a: f32, b: f32, c: f32, d: f32, e: f32) -> vec3<f32> {
  let dir_x = d - b;
  let len_x = min(abs(dir_x) / max(max(abs(d - c), abs(c - b)), 1e-20), 1.0);
  let dir_y = e - a;
  let len_y = min(abs(dir_y) / max(max(abs(e - c), abs(c - a)), 1e-20), 1.0);
  return vec3<f32>(dir_x, dir_y, len_x * len_x + len_y * len_y);
}

// one kernel tap: its weight for offset `off` from the output position
fn weight(off: vec2<f32>, dir: vec2<f32>, len2: vec2<f32>, lobe: f32, clip: f32) -> f32 {
  let vx = (off.x * dir.x + off.y * dir.y) * len2.x;
  let vy = (off.x * -dir.y + off.y * dir.x) * len2.y;
  let d2 = min(vx * vx + vy * vy, clip);
  var wb = 0.4 * d2 - 1.0;
  var wa = lobe * d2 - 1.0;
  wb = wb * wb;
  wa = wa * wa;
  wb = {{ (25.0 / 16.0)|f32 }} * wb - {{ (25.0 / 16.0 - 1.0)|f32 }};
  return wb * wa;
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let x = i32(gid.x);
  let y = i32(gid.y);
  if (x >= OW || y >= OH) { return; }
  let pos = vec2<f32>(f32(x), f32(y)) * vec2<f32>({{ (in_width / out_width)|f32 }}, {{ (in_height / out_height)|f32 }})
    + vec2<f32>({{ (0.5 * in_width / out_width - 0.5)|f32 }}, {{ (0.5 * in_height / out_height - 0.5)|f32 }});
  let fl = floor(pos);
  let pp = pos - fl;
  let fx = i32(fl.x);
  let fy = i32(fl.y);
  let cb = texel(fx, fy - 1);
  let cc = texel(fx + 1, fy - 1);
  let ce = texel(fx - 1, fy);
  let cf = texel(fx, fy);
  let cg = texel(fx + 1, fy);
  let ch = texel(fx + 2, fy);
  let ci = texel(fx - 1, fy + 1);
  let cj = texel(fx, fy + 1);
  let ck = texel(fx + 1, fy + 1);
  let cl = texel(fx + 2, fy + 1);
  let cn = texel(fx, fy + 2);
  let co = texel(fx + 1, fy + 2);
  let lb = luma2(cb);
  let lc = luma2(cc);
  let le = luma2(ce);
  let lf = luma2(cf);
  let lg = luma2(cg);
  let lh = luma2(ch);
  let li = luma2(ci);
  let lj = luma2(cj);
  let lk = luma2(ck);
  let ll = luma2(cl);
  let ln = luma2(cn);
  let lo = luma2(co);
  // the gradients at f, g, j, k, blended with bilinear weights
  var acc = vec3<f32>(0.0);
  acc = acc + gradient(lb, le, lf, lg, lj) * ((1.0 - pp.x) * (1.0 - pp.y));
  acc = acc + gradient(lc, lf, lg, lh, lk) * (pp.x * (1.0 - pp.y));
  acc = acc + gradient(lf, li, lj, lk, ln) * ((1.0 - pp.x) * pp.y);
  acc = acc + gradient(lg, lj, lk, ll, lo) * (pp.x * pp.y);
  // normalise the direction; no direction at all reads as horizontal
  let dir2 = acc.x * acc.x + acc.y * acc.y;
  let flat = dir2 < {{ (1.0 / 32768.0)|f32 }};
  let rsq = select(1.0 / sqrt(dir2), 1.0, flat);
  let dir = vec2<f32>(select(acc.x, 1.0, flat), acc.y) * rsq;
  // edgeness {0..2} -> {0..1}, squared; the kernel's shape follows it
  var edge = acc.z * 0.5;
  edge = edge * edge;
  let stretch = (dir.x * dir.x + dir.y * dir.y) / max(abs(dir.x), abs(dir.y));
  let len2 = vec2<f32>(1.0 + (stretch - 1.0) * edge, 1.0 + -0.5 * edge);
  let lobe = 0.5 + {{ (1.0 / 4.0 - 0.04 - 0.5)|f32 }} * edge;
  let clip = 1.0 / lobe;
  var sum = vec3<f32>(0.0);
  var total = 0.0;
  var w = 0.0;
  w = weight(vec2<f32>(0.0, -1.0) - pp, dir, len2, lobe, clip); sum = sum + cb * w; total = total + w;
  w = weight(vec2<f32>(1.0, -1.0) - pp, dir, len2, lobe, clip); sum = sum + cc * w; total = total + w;
  w = weight(vec2<f32>(-1.0, 0.0) - pp, dir, len2, lobe, clip); sum = sum + ce * w; total = total + w;
  w = weight(vec2<f32>(0.0, 0.0) - pp, dir, len2, lobe, clip); sum = sum + cf * w; total = total + w;
  w = weight(vec2<f32>(1.0, 0.0) - pp, dir, len2, lobe, clip); sum = sum + cg * w; total = total + w;
  w = weight(vec2<f32>(2.0, 0.0) - pp, dir, len2, lobe, clip); sum = sum + ch * w; total = total + w;
  w = weight(vec2<f32>(-1.0, 1.0) - pp, dir, len2, lobe, clip); sum = sum + ci * w; total = total + w;
  w = weight(vec2<f32>(0.0, 1.0) - pp, dir, len2, lobe, clip); sum = sum + cj * w; total = total + w;
  w = weight(vec2<f32>(1.0, 1.0) - pp, dir, len2, lobe, clip); sum = sum + ck * w; total = total + w;
  w = weight(vec2<f32>(2.0, 1.0) - pp, dir, len2, lobe, clip); sum = sum + cl * w; total = total + w;
  w = weight(vec2<f32>(0.0, 2.0) - pp, dir, len2, lobe, clip); sum = sum + cn * w; total = total + w;
  w = weight(vec2<f32>(1.0, 2.0) - pp, dir, len2, lobe, clip); sum = sum + co * w; total = total + w;
  let lo4 = min(min(cf, cg), min(cj, ck));
  let hi4 = max(max(cf, cg), max(cj, ck));
  let c = min(hi4, max(lo4, sum / total));
  dst[u32(y * OW + x)] = vec4<f32>(c, 0.0);
}
