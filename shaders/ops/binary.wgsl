{# Broadcasting elementwise op, one output element per invocation: binop(a, b) (binary_ops),
   Where(c, a, b), or "Unary": activate(a) (a unary op whose input and output lie in
   different layouts). Each input is read at its own (broadcast, layout) strides. #}
{$ from "common.wgsl" import linear_index, decode, offset, zero_pad_lanes $}
{$ set where = op == "Where" $}
{$ set unary = op == "Unary" $}
{$ if where $}
@group(0) @binding(0) var<storage, read> c: array<{{ S }}>;
{$ endif $}
@group(0) @binding({{ 1 if where else 0 }}) var<storage, read> a: array<{{ S }}>;
{$ if not unary $}
@group(0) @binding({{ 2 if where else 1 }}) var<storage, read> b: array<{{ S }}>;
{$ endif $}
@group(0) @binding({{ 1 if unary else (3 if where else 2) }}) var<storage, read_write> y: array<{{ S }}>;
{$ if unary $}
{$ include "activation.wgsl" $}
{$ elif not where $}
{$ include "binary_ops.wgsl" $}
{$ endif $}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
{{ linear_index(pitch, out.total) }}
{{ decode(out, "o") }}
{{ zero_pad_lanes(out, "o", "y") }}
  let x = f32(a[{{ offset("o", a_strides) }}]);
{$ if unary $}
  y[i] = {{ S }}(activate(vec4<f32>(x), 0u).x);
{$ else $}
  let z = f32(b[{{ offset("o", b_strides) }}]);
{$ endif $}
{$ if where $}
  y[i] = {{ S }}(select(z, x, f32(c[{{ offset("o", c_strides) }}]) != 0.0));
{$ elif not unary $}
  y[i] = {{ S }}(binop(vec4<f32>(x), vec4<f32>(z)).x);
{$ endif $}
}
