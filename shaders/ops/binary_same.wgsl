{# Binary elementwise op where the GPU operands have the output's shape and layout: 4 values
   per invocation. Each operand `a`, `b` is a tensor (read per vec4), a scalar constant (a
   literal) or a constant vector along the buffer's innermost axis (read at i % w4). The
   element count and grid pitch are read from `sz` (ops.common.Sizes): one kernel, any size. #}
{$ from "common.wgsl" import linear_index, sizes_decl $}
{$ set ns = namespace(k=0) $}
{$ for name, o in (("a", a), ("b", b)) $}
{$ if o.kind == "tensor" $}
@group(0) @binding({{ ns.k }}) var<storage, read> {{ name }}: array<vec4<{{ S }}>>;
{$ set ns.k = ns.k + 1 $}
{$ elif o.kind == "vector" $}
@group(0) @binding({{ ns.k }}) var<storage, read> {{ name }}: array<vec4<f32>>;
{$ set ns.k = ns.k + 1 $}
{$ endif $}
{$ endfor $}
@group(0) @binding({{ ns.k }}) var<storage, read_write> y: array<vec4<{{ S }}>>;
{{ sizes_decl(ns.k + 1, sizes) }}{$ include "activation.wgsl" $}
{$ include "binary_ops.wgsl" $}

{$ macro load(name, o) $}
{$- if o.kind == "tensor" -$}
vec4<f32>({{ name }}[i])
{$- elif o.kind == "vector" -$}
{{ name }}[i % {{ o.w4|u }}]
{$- else -$}
vec4<f32>({{ o.value | f32 }})
{$- endif -$}
{$ endmacro $}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
{{ linear_index(pitch, count) }}
  var r = activate(binop({{ load("a", a) }}, {{ load("b", b) }}), 0u);
{$ if channels is not none $}
  let lane = (i % {{ cp4 }}u) * 4u + vec4<u32>(0u, 1u, 2u, 3u);
  r = select(vec4<f32>(0.0), r, lane < vec4<u32>({{ channels }}u));
{$ endif $}
  y[i] = vec4<{{ S }}>(r);
}
