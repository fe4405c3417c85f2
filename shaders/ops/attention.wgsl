{# Fused attention (infer/ops/attention.py): O[i] = sum_j softmax_j(scale * q_i . k_j +
   sum of biases[i, j]) v_j. One workgroup per (batch element, block of wg queries): the
   element's keys and values go to workgroup memory, then each invocation walks the keys for
   its query with a running maximum m and sum l (online softmax), rescaling its accumulator.
   Strides: q = (per query, per channel), k = (per key, per channel), v = (per key, per
   channel), o = (per query, per channel), biases (i, j); per batch axis (n, div, q, k, v, o,
   b[...]). #}
@group(0) @binding(0) var<storage, read> q: array<{{ S }}>;
@group(0) @binding(1) var<storage, read> k: array<{{ S }}>;
@group(0) @binding(2) var<storage, read> v: array<{{ S }}>;
{$ for b in biases $}
@group(0) @binding({{ 3 + loop.index0 }}) var<storage, read> bias{{ loop.index0 }}: array<{{ S }}>;
{$ endfor $}
@group(0) @binding({{ 3 + biases | length }}) var<storage, read_write> o: array<{{ S }}>;

var<workgroup> ks: array<f32, {{ nk * d }}>;
var<workgroup> vs: array<f32, {{ nk * dv }}>;

@compute @workgroup_size({{ wg }})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * {{ pitch }}u;
  if (g >= {{ groups }}u) { return; }
  let qb = g % {{ blocks }}u;
  let bt = g / {{ blocks }}u;
  var qo = {{ offsets[0] }}u;
  var ko = {{ offsets[1] }}u;
  var vo = {{ offsets[2] }}u;
  var oo = 0u;
{$ for b in biases $}
  var bo{{ loop.index0 }} = 0u;
{$ endfor $}
{$ for e in batch $}
  let b{{ loop.index0 }} = (bt / {{ e.div }}u) % {{ e.n }}u;
  qo += b{{ loop.index0 }} * {{ e.q }}u;
  ko += b{{ loop.index0 }} * {{ e.k }}u;
  vo += b{{ loop.index0 }} * {{ e.v }}u;
  oo += b{{ loop.index0 }} * {{ e.o }}u;
{$ set outer = loop.index0 $}
{$ for s in e.b $}
  bo{{ loop.index0 }} += b{{ outer }} * {{ s }}u;
{$ endfor $}
{$ endfor $}
  for (var e = lid; e < {{ nk * d }}u; e += {{ wg }}u) {
    ks[e] = f32(k[ko + (e / {{ d }}u) * {{ k[0] }}u + (e % {{ d }}u) * {{ k[1] }}u]);
  }
  for (var e = lid; e < {{ nk * dv }}u; e += {{ wg }}u) {
    vs[e] = f32(v[vo + (e / {{ dv }}u) * {{ v[0] }}u + (e % {{ dv }}u) * {{ v[1] }}u]);
  }
  workgroupBarrier();
  let i = qb * {{ wg }}u + lid;
  if (i >= {{ nq }}u) { return; }
  var qv: array<f32, {{ d }}>;
  for (var c = 0u; c < {{ d }}u; c++) {
    qv[c] = f32(q[qo + i * {{ q[0] }}u + c * {{ q[1] }}u]) * {{ scale | f32 }};
  }
  var acc: array<f32, {{ dv }}>;
  var m = -3.4028234663852886e38;
  var l = 0.0;
  for (var j = 0u; j < {{ nk }}u; j++) {
    var s = 0.0;
    for (var c = 0u; c < {{ d }}u; c++) {
      s += qv[c] * ks[j * {{ d }}u + c];
    }
{$ for b in biases $}
    s += f32(bias{{ loop.index0 }}[bo{{ loop.index0 }} + i * {{ b.i }}u + j * {{ b.j }}u]);
{$ endfor $}
    let mn = max(m, s);
    let corr = exp(m - mn);
    let p = exp(s - mn);
    l = l * corr + p;
    for (var c = 0u; c < {{ dv }}u; c++) {
      acc[c] = acc[c] * corr + p * vs[j * {{ dv }}u + c];
    }
    m = mn;
  }
  let inv = 1.0 / l;
  for (var c = 0u; c < {{ dv }}u; c++) {
    o[oo + i * {{ o[0] }}u + c * {{ o[1] }}u] = {{ S }}(acc[c] * inv);
  }
}
