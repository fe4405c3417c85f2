{# Sharpening after edge-adaptive upsampling (the `edge` mode's second pass): AMD FidelityFX
   Super Resolution 1.0's RCAS (robust contrast-adaptive sharpening), written from its
   published description. A '+' filter, e + lobe * (b + d + f + h) normalised, whose negative
   lobe is the largest that clips the centre neither below 0 nor above 1 given its four
   neighbours (per channel; the weakest wins), capped at -(1/4 - 1/16) and scaled by
   2^-sharpness. The input is saturated first (RCAS's limits assume [0, 1]). Same operations
   as infer/training/edge_adaptive.py's rcas. #}
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;

const W: i32 = {{ width }};
const H: i32 = {{ height }};

fn texel(x: i32, y: i32) -> vec3<f32> {
  return clamp(src[u32(clamp(y, 0, H - 1) * W + clamp(x, 0, W - 1))].xyz, vec3<f32>(0.0), vec3<f32>(1.0));
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let x = i32(gid.x);
  let y = i32(gid.y);
  if (x >= W || y >= H) { return; }
  let b = texel(x, y - 1);
  let d = texel(x - 1, y);
  let e = texel(x, y);
  let f = texel(x + 1, y);
  let h = texel(x, y + 1);
  let mn4 = min(min(min(b, d), f), h);
  let mx4 = max(max(max(b, d), f), h);
  let hit_min = min(mn4, e) / max(4.0 * mx4, vec3<f32>(1e-6));
  let hit_max = (1.0 - max(mx4, e)) / min(4.0 * mn4 - 4.0, vec3<f32>(-1e-6));
  let lobe3 = max(-hit_min, hit_max);
  let lobe_c = max(max(lobe3.x, lobe3.y), lobe3.z);
  let lobe = max({{ (-limit)|f32 }}, min(lobe_c, 0.0)) * {{ strength|f32 }};
  let c = (lobe * b + lobe * d + lobe * h + lobe * f + e) / (4.0 * lobe + 1.0);
  dst[u32(y * W + x)] = vec4<f32>(c, 0.0);
}
