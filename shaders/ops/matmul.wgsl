{# Batched matrix product (infer/ops/matmul.py: MatMul, Gemm, Einsum): C = alpha * A @ B
   (+ beta * bias) (then an activation). Every tensor is read and written at its own element
   strides: a = (m, k), b = (k, n), c = (m, n), per batch axis (n, div, a, b, c, bias), from
   element offsets (a view into a larger tensor); a transposed operand is swapped strides. Each invocation computes a tm x tn tile. #}
@group(0) @binding(0) var<storage, read> a: array<{{ S }}>;
@group(0) @binding(1) var<storage, read> b: array<{{ S }}>;
{$ if bias $}
@group(0) @binding(2) var<storage, read> bias: array<{{ S }}>;
{$ endif $}
@group(0) @binding({{ 3 if bias else 2 }}) var<storage, read_write> c: array<{{ S }}>;
{$ include "activation.wgsl" $}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * {{ pitch }}u;
  if (i >= {{ total }}u) { return; }
  let n0 = (i % {{ nt }}u) * {{ tn }}u;
  let m0 = ((i / {{ nt }}u) % {{ mt }}u) * {{ tm }}u;
  let bt = i / {{ nt * mt }}u;
  var ao = {{ offsets[0] }}u;
  var bo = {{ offsets[1] }}u;
  var co = 0u;
{$ if bias $}
  var qo = 0u;
{$ endif $}
{$ for d in batch $}
  let b{{ loop.index0 }} = (bt / {{ d.div }}u) % {{ d.n }}u;
  ao += b{{ loop.index0 }} * {{ d.a }}u;
  bo += b{{ loop.index0 }} * {{ d.b }}u;
  co += b{{ loop.index0 }} * {{ d.c }}u;
{$ if bias $}
  qo += b{{ loop.index0 }} * {{ d.bias }}u;
{$ endif $}
{$ endfor $}
  // rows / columns past the edge read the last one (their results are not stored)
{$ for r in range(tm) $}
  let ar{{ r }} = ao + min(m0 + {{ r }}u, {{ m - 1 }}u) * {{ a[0] }}u;
{$ endfor $}
{$ for q in range(tn) $}
  let bc{{ q }} = bo + min(n0 + {{ q }}u, {{ n - 1 }}u) * {{ b[1] }}u;
{$ endfor $}
{$ for r in range(tm) $}
  var acc{{ r }} = vec4<f32>(0.0);
{$ endfor $}
  for (var kk = 0u; kk < {{ k }}u; kk++) {
    let bv = vec4<f32>({$ for q in range(tn) $}f32(b[bc{{ q }} + kk * {{ b[0] }}u]){{ ", " if not loop.last }}{$ endfor $});
{$ for r in range(tm) $}
    acc{{ r }} += f32(a[ar{{ r }} + kk * {{ a[1] }}u]) * bv;
{$ endfor $}
  }
{$ for r in range(tm) $}
  let mr{{ r }} = m0 + {{ r }}u;
  if (mr{{ r }} < {{ m }}u) {
{$ for q in range(tn) $}
    if (n0 + {{ q }}u < {{ n }}u) {
      var v = acc{{ r }}[{{ q }}] * {{ alpha | f32 }};
{$ if bias $}
      v += {{ bias.beta | f32 }} * f32(bias[qo + mr{{ r }} * {{ bias.m }}u + (n0 + {{ q }}u) * {{ bias.n }}u]);
{$ endif $}
      c[co + mr{{ r }} * {{ c[0] }}u + (n0 + {{ q }}u) * {{ c[1] }}u] = {{ S }}(activate(vec4<f32>(v), 0u).x);
    }
{$ endfor $}
  }
{$ endfor $}
}
