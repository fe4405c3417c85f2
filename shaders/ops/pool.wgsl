{# MaxPool / AveragePool over 1-3 spatial dims (infer/ops/pool.py), one output element per
   invocation; fewer spatial dims are padded to 3 with size-1 axes. Window taps outside the
   input are skipped; AveragePool divides by the taps inside the input, or with
   count_include_pad by those inside the padded extent [-p, size + q). #}
{$ from "common.wgsl" import linear_index, decode, zero_pad_lanes $}
@group(0) @binding(0) var<storage, read> x: array<{{ S }}>;
@group(0) @binding(1) var<storage, read_write> y: array<{{ S }}>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
{{ linear_index(pitch, out.total) }}
{{ decode(out, "o") }}
{{ zero_pad_lanes(out, "o", "y") }}
  let base = o0 * {{ xs[0] }}u + o1 * {{ xs[1] }}u;
{$ if op == "max" $}
  var acc = -3.4028234663852886e38;
{$ else $}
  var acc = 0.0;
  var count = 0u;
{$ endif $}
  for (var kd = 0; kd < {{ k[0] }}; kd++) {
    let id = i32({{ sp[0] }} * {{ s[0] }}u) - {{ p[0] }} + kd * {{ d[0] }};
    let vd = id >= 0 && id < {{ isz[0] }};
    let ed = id < {{ isz[0] + q[0] }};
    for (var kh = 0; kh < {{ k[1] }}; kh++) {
      let ih = i32({{ sp[1] }} * {{ s[1] }}u) - {{ p[1] }} + kh * {{ d[1] }};
      let vh = ih >= 0 && ih < {{ isz[1] }};
      let eh = ih < {{ isz[1] + q[1] }};
      for (var kw = 0; kw < {{ k[2] }}; kw++) {
        let iw = i32({{ sp[2] }} * {{ s[2] }}u) - {{ p[2] }} + kw * {{ d[2] }};
        let vw = iw >= 0 && iw < {{ isz[2] }};
        let ew = iw < {{ isz[2] + q[2] }};
{$ if op == "avg" and include_pad $}
        if (ed && eh && ew) { count += 1u; }
{$ endif $}
        if (vd && vh && vw) {
          let v = f32(x[base + u32(id) * {{ xs[2] }}u + u32(ih) * {{ xs[3] }}u + u32(iw) * {{ xs[4] }}u]);
{$ if op == "max" $}
          acc = max(acc, v);
{$ else $}
          acc += v;
{$ if not include_pad $}
          count += 1u;
{$ endif $}
{$ endif $}
        }
      }
    }
  }
{$ if op == "max" $}
  y[i] = {{ S }}(acc);
{$ else $}
  y[i] = {{ S }}(acc / f32(max(count, 1u)));
{$ endif $}
}
