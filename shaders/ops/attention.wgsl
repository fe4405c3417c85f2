{# Fused attention (infer/ops/attention.py): O[i] = sum_j softmax_j(scale * q_i . k_j +
   sum of biases[i, j]) v_j. One workgroup per (batch element, block of wg queries): the
   element's keys and values go to workgroup memory as vec4s (channels padded to d4 * 4 and
   dv4 * 4 with zeros), then each invocation walks the keys for its query once with a running
   maximum m and sum l (online softmax), rescaling its accumulators; the channel loops are
   unrolled so q and the accumulators stay in registers. Measured on lavapipe (96 windows x
   64 queries, best of 18): 39 ms, against 61 ms for two passes (maximum, then the weighted
   sum: the scores' dot products and bias loads twice) and 41 ms for scores kept in a
   private array between the passes. Strides: q = (per query, per
   channel), k = (per key, per channel), v = (per key, per channel), o = (per query, per
   channel), biases (i, j); per batch axis (n, div, q, k, v, o, b[...]). #}
@group(0) @binding(0) var<storage, read> q: array<{{ S }}>;
@group(0) @binding(1) var<storage, read> k: array<{{ S }}>;
@group(0) @binding(2) var<storage, read> v: array<{{ S }}>;
{$ for b in biases $}
@group(0) @binding({{ 3 + loop.index0 }}) var<storage, read> bias{{ loop.index0 }}: array<{{ S }}>;
{$ endfor $}
@group(0) @binding({{ 3 + biases | length }}) var<storage, read_write> o: array<{{ S }}>;

{$ set d4 = (d + 3) // 4 $}
{$ set dv4 = (dv + 3) // 4 $}
var<workgroup> ks: array<vec4<f32>, {{ nk * d4 }}>;
var<workgroup> vs: array<vec4<f32>, {{ nk * dv4 }}>;

fn score(i: u32, j: u32{$ for c4 in range(d4) $}, q{{ c4 }}: vec4<f32>{$ endfor $}{$ for b in biases $}, bo{{ loop.index0 }}: u32{$ endfor $}) -> f32 {
  var s = {$ for c4 in range(d4) $}dot(q{{ c4 }}, ks[j * {{ d4 }}u + {{ c4 }}u]){{ " + " if not loop.last }}{$ endfor $};
{$ for b in biases $}
  s += f32(bias{{ loop.index0 }}[bo{{ loop.index0 }} + i * {{ b.i }}u + j * {{ b.j }}u]);
{$ endfor $}
  return s;
}

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
  for (var e = lid; e < {{ nk * d4 }}u; e += {{ wg }}u) {
    let base = ko + (e / {{ d4 }}u) * {{ k[0] }}u;
    let c = (e % {{ d4 }}u) * 4u;
    var t = vec4<f32>(0.0);
{$ for l in range(4) $}
    if (c + {{ l }}u < {{ d }}u) { t[{{ l }}] = f32(k[base + (c + {{ l }}u) * {{ k[1] }}u]); }
{$ endfor $}
    ks[e] = t;
  }
  for (var e = lid; e < {{ nk * dv4 }}u; e += {{ wg }}u) {
    let base = vo + (e / {{ dv4 }}u) * {{ v[0] }}u;
    let c = (e % {{ dv4 }}u) * 4u;
    var t = vec4<f32>(0.0);
{$ for l in range(4) $}
    if (c + {{ l }}u < {{ dv }}u) { t[{{ l }}] = f32(v[base + (c + {{ l }}u) * {{ v[1] }}u]); }
{$ endfor $}
    vs[e] = t;
  }
  workgroupBarrier();
  let i = qb * {{ wg }}u + lid;
  if (i >= {{ nq }}u) { return; }
  let qi = qo + i * {{ q[0] }}u;
{$ for c4 in range(d4) $}
  let q{{ c4 }} = {{ scale | f32 }} * vec4<f32>({$ for l in range(4) $}{$ set c = 4 * c4 + l $}{$ if c < d $}f32(q[qi + {{ c * q[1] }}u]){$ else $}0.0{$ endif $}{{ ", " if not loop.last }}{$ endfor $});
{$ endfor $}
{$ for c4 in range(dv4) $}
  var a{{ c4 }} = vec4<f32>(0.0);
{$ endfor $}
  var m = -3.4028234663852886e38;
  var l = 0.0;
  for (var j = 0u; j < {{ nk }}u; j++) {
    let s = score(i, j{$ for c4 in range(d4) $}, q{{ c4 }}{$ endfor $}{$ for b in biases $}, bo{{ loop.index0 }}{$ endfor $});
    let mn = max(m, s);
    let corr = exp(m - mn);
    let p = exp(s - mn);
    l = l * corr + p;
{$ for c4 in range(dv4) $}
    a{{ c4 }} = a{{ c4 }} * corr + p * vs[j * {{ dv4 }}u + {{ c4 }}u];
{$ endfor $}
    m = mn;
  }
  let inv = 1.0 / l;
  let oi = oo + i * {{ o[0] }}u;
{$ for c in range(dv) $}
  o[oi + {{ c * o[1] }}u] = {{ S }}(a{{ c // 4 }}[{{ c % 4 }}] * inv);
{$ endfor $}
}
