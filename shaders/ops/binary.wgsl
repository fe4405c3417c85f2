{# Broadcasting elementwise op, one output element per invocation: binop(a, b) (binary_ops),
   or Where(c, a, b) when c_strides is given. Each input is read at its own (broadcast,
   layout) strides. #}
{$ from "common.wgsl" import linear_index, decode, offset, zero_pad_lanes $}
{$ set where = op == "Where" $}
{$ if where $}
@group(0) @binding(0) var<storage, read> c: array<{{ S }}>;
{$ endif $}
@group(0) @binding({{ 1 if where else 0 }}) var<storage, read> a: array<{{ S }}>;
@group(0) @binding({{ 2 if where else 1 }}) var<storage, read> b: array<{{ S }}>;
@group(0) @binding({{ 3 if where else 2 }}) var<storage, read_write> y: array<{{ S }}>;
{$ if not where $}
{$ include "binary_ops.wgsl" $}
{$ endif $}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
{{ linear_index(pitch, out.total) }}
{{ decode(out, "o") }}
{{ zero_pad_lanes(out, "o", "y") }}
  let x = f32(a[{{ offset("o", a_strides) }}]);
  let z = f32(b[{{ offset("o", b_strides) }}]);
{$ if where $}
  y[i] = {{ S }}(select(z, x, f32(c[{{ offset("o", c_strides) }}]) != 0.0));
{$ else $}
  y[i] = {{ S }}(binop(vec4<f32>(x), vec4<f32>(z)).x);
{$ endif $}
}
