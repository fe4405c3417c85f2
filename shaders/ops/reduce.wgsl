{# Reduction over some axes (the Reduce* ops and global pools; infer/ops/reduce.py). Each output
   element starts at sum o_k * out_strides[k] in x and walks the reduced extent, decoded
   row-major over `red` (n, div, stride). wg == 0: one invocation per output element;
   wg > 0: one workgroup per output element, threads striding over the extent, then a
   shared-memory tree. #}
{$ from "common.wgsl" import linear_index, decode, offset, zero_pad_lanes $}
@group(0) @binding(0) var<storage, read> x: array<{{ S }}>;
@group(0) @binding(1) var<storage, read_write> y: array<{{ S }}>;

fn load(base: u32, e: u32) -> f32 {
  let v = f32(x[base{$ for r in red $} + ((e / {{ r.div }}u) % {{ r.n }}u) * {{ r.stride }}u{$ endfor $}]);
{$ if op == "l1" $}
  return abs(v);
{$ elif op in ("l2", "sumsquare") $}
  return v * v;
{$ elif op == "logsumexp" $}
  return exp(v);
{$ else $}
  return v;
{$ endif $}
}

fn combine(a: f32, b: f32) -> f32 {
{$ if op == "max" $}
  return max(a, b);
{$ elif op == "min" $}
  return min(a, b);
{$ elif op == "prod" $}
  return a * b;
{$ else $}
  return a + b;
{$ endif $}
}

fn finish(a: f32) -> f32 {
{$ if op == "mean" $}
  return a / {{ extent | f32 }};
{$ elif op == "l2" $}
  return sqrt(a);
{$ elif op == "logsumexp" $}
  return log(a);
{$ else $}
  return a;
{$ endif $}
}

{$ set init = {"max": "-3.4028234663852886e38", "min": "3.4028234663852886e38", "prod": "1.0"}.get(op, "0.0") $}
{$ if wg $}
var<workgroup> part: array<f32, {{ wg }}>;

@compute @workgroup_size({{ wg }})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = wid.x + wid.y * {{ pitch }}u;
  if (i >= {{ out.total }}u) { return; }
{{ decode(out, "o") }}
{{ zero_pad_lanes(out, "o", "y") }}
  let base = {{ offset("o", out_strides) }};
  var acc = {{ init }};
  for (var e = lid; e < {{ extent }}u; e += {{ wg }}u) {
    acc = combine(acc, load(base, e));
  }
  part[lid] = acc;
  workgroupBarrier();
  for (var s = {{ wg // 2 }}u; s > 0u; s >>= 1u) {
    if (lid < s) { part[lid] = combine(part[lid], part[lid + s]); }
    workgroupBarrier();
  }
  if (lid == 0u) { y[i] = {{ S }}(finish(part[0])); }
}
{$ else $}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
{{ linear_index(pitch, out.total) }}
{{ decode(out, "o") }}
{{ zero_pad_lanes(out, "o", "y") }}
  let base = {{ offset("o", out_strides) }};
  var acc = {{ init }};
  for (var e = 0u; e < {{ extent }}u; e++) {
    acc = combine(acc, load(base, e));
  }
  y[i] = {{ S }}(finish(acc));
}
{$ endif $}
