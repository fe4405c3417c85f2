{# Binary elementwise op on two tensors of the output's shape: 4 values per invocation. #}
{$ from "common.wgsl" import linear_index $}
@group(0) @binding(0) var<storage, read> a: array<vec4<{{ S }}>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<{{ S }}>>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<{{ S }}>>;
{$ include "activation.wgsl" $}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
{{ linear_index(pitch, count) }}
  let x = vec4<f32>(a[i]);
  let z = vec4<f32>(b[i]);
{$ if op == "Add" $}
  var r = x + z;
{$ elif op == "Sub" $}
  var r = x - z;
{$ elif op == "Mul" $}
  var r = x * z;
{$ elif op == "Div" $}
  var r = x / z;
{$ elif op == "PRelu" $}
  var r = select(x * z, x, x >= vec4<f32>(0.0));
{$ elif op == "Max" $}
  var r = max(x, z);
{$ elif op == "Min" $}
  var r = min(x, z);
{$ elif op == "Pow" $}
  var r = pow(x, z);
{$ endif $}
  r = activate(r, 0u);
{$ if channels is not none $}
  let lane = (i % {{ cp4 }}u) * 4u + vec4<u32>(0u, 1u, 2u, 3u);
  r = select(vec4<f32>(0.0), r, lane < vec4<u32>({{ channels }}u));
{$ endif $}
  y[i] = vec4<{{ S }}>(r);
}
