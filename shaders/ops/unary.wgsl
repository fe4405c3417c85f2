{# Elementwise unary op (activation or math function) over a whole tensor, 4 values per
   invocation; in the image layout the channel axis's padding lanes stay zero. #}
{$ from "common.wgsl" import linear_index $}
@group(0) @binding(0) var<storage, read> x: array<vec4<{{ S }}>>;
@group(0) @binding(1) var<storage, read_write> y: array<vec4<{{ S }}>>;
{$ include "activation.wgsl" $}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
{{ linear_index(pitch, count) }}
  var r = activate(vec4<f32>(x[i]), 0u);
{$ if channels is not none $}
  let lane = (i % {{ cp4 }}u) * 4u + vec4<u32>(0u, 1u, 2u, 3u);
  r = select(vec4<f32>(0.0), r, lane < vec4<u32>({{ channels }}u));
{$ endif $}
  y[i] = vec4<{{ S }}>(r);
}
