{# Broadcasting binary elementwise op, one output element per invocation. #}
{$ from "common.wgsl" import linear_index, decode, offset, zero_pad_lanes $}
@group(0) @binding(0) var<storage, read> a: array<{{ S }}>;
@group(0) @binding(1) var<storage, read> b: array<{{ S }}>;
@group(0) @binding(2) var<storage, read_write> y: array<{{ S }}>;

fn op(x: f32, z: f32) -> f32 {
{$ if op == "Add" $}
  return x + z;
{$ elif op == "Sub" $}
  return x - z;
{$ elif op == "Mul" $}
  return x * z;
{$ elif op == "Div" $}
  return x / z;
{$ elif op == "PRelu" $}
  return select(x * z, x, x >= 0.0);
{$ elif op == "Max" $}
  return max(x, z);
{$ elif op == "Min" $}
  return min(x, z);
{$ elif op == "Pow" $}
  return pow(x, z);
{$ endif $}
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
{{ linear_index(pitch, out.total) }}
{{ decode(out, "o") }}
{{ zero_pad_lanes(out, "o", "y") }}
  y[i] = {{ S }}(op(f32(a[{{ offset("o", a_strides) }}]), f32(b[{{ offset("o", b_strides) }}])));
}
