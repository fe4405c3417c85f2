{# Normalisation kernels (infer/ops/norm.py), on vec4s of channels (channels-last, padded).
   affine  y = (x - p[3k]) * p[3k+1] + p[3k+2], k = c4 (+ n * C4 when per_batch); pad lanes
           have zero coefficients, so they stay zero.
   stats   InstanceNormalization statistics: one workgroup per (n, c4) reduces over space in
           shared memory, first the mean, then the variance about it, and writes the affine
           coefficients (mean, scale / sqrt(var + eps), bias) for `affine`. #}
{$ if kind == "affine" $}
{$ from "common.wgsl" import linear_index $}
@group(0) @binding(0) var<storage, read> x: array<vec4<{{ S }}>>;
@group(0) @binding(1) var<storage, read> p: array<vec4<{{ S if p_tensor else "f32" }}>>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<{{ S }}>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
{{ linear_index(pitch, count) }}
{$ if per_batch $}
  let k = (i / {{ batch_stride }}u) * {{ c4 }}u + i % {{ c4 }}u;
{$ else $}
  let k = i % {{ c4 }}u;
{$ endif $}
  let q = array<vec4<f32>, 3>(vec4<f32>(p[3u * k]), vec4<f32>(p[3u * k + 1u]), vec4<f32>(p[3u * k + 2u]));
  y[i] = vec4<{{ S }}>((vec4<f32>(x[i]) - q[0]) * q[1] + q[2]);
}
{$ else $}
@group(0) @binding(0) var<storage, read> x: array<vec4<{{ S }}>>;
@group(0) @binding(1) var<storage, read> p: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> stats: array<vec4<{{ S }}>>;
var<workgroup> part: array<vec4<f32>, {{ wg }}>;

fn tree(lid: u32) {
  for (var s = {{ wg // 2 }}u; s > 0u; s >>= 1u) {
    if (lid < s) { part[lid] += part[lid + s]; }
    workgroupBarrier();
  }
}

@compute @workgroup_size({{ wg }})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * {{ pitch }}u;
  if (g >= {{ groups }}u) { return; }
  let c = g % {{ c4 }}u;
  let base = (g / {{ c4 }}u) * {{ size * c4 }}u + c;
  var acc = vec4<f32>(0.0);
  for (var s = lid; s < {{ size }}u; s += {{ wg }}u) {
    acc += vec4<f32>(x[base + s * {{ c4 }}u]);
  }
  part[lid] = acc;
  workgroupBarrier();
  tree(lid);
  let mean = part[0] / {{ size | f32 }};
  workgroupBarrier();
  acc = vec4<f32>(0.0);
  for (var s = lid; s < {{ size }}u; s += {{ wg }}u) {
    let d = vec4<f32>(x[base + s * {{ c4 }}u]) - mean;
    acc += d * d;
  }
  part[lid] = acc;
  workgroupBarrier();
  tree(lid);
  if (lid == 0u) {
    let var_ = part[0] / {{ size | f32 }};
    stats[3u * g] = vec4<{{ S }}>(mean);
    stats[3u * g + 1u] = vec4<{{ S }}>(p[2u * c] / sqrt(var_ + {{ eps | f32 }}));
    stats[3u * g + 2u] = vec4<{{ S }}>(p[2u * c + 1u]);
  }
}
{$ endif $}
