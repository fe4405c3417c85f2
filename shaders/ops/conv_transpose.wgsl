{# Transposed convolution of any spatial rank (1-3) and group count, one output element per
   invocation; only kernel taps that land on an input sample (stride divides the offset) add. #}
{$ from "common.wgsl" import linear_index, decode $}
@group(0) @binding(0) var<storage, read> x: array<{{ S }}>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<{{ S }}>;
{$ if act.kind == "PRelu" $}
@group(0) @binding(4) var<uniform> act_slope: array<vec4<f32>, {{ oc4 }}>;
{$ endif $}
{$ include "activation.wgsl" $}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
{{ linear_index(pitch, out.total) }}
{{ decode(out, "o") }}
{$ if out.channels is not none $}
  if (o1 >= {{ out.channels }}u) { y[i] = 0.0; return; }
{$ endif $}
  let g = o1 / {{ ocg }}u;
  let ocl = o1 % {{ ocg }}u;
  var acc = bias[o1];
  for (var kd = 0; kd < {{ k[0] }}; kd++) {
    let td = i32({{ sp[0] }}) + {{ p[0] }} - kd * {{ d[0] }};
    if (td < 0 || td % {{ s[0] }} != 0 || td / {{ s[0] }} >= {{ isz[0] }}) { continue; }
    let id = u32(td / {{ s[0] }});
    for (var kh = 0; kh < {{ k[1] }}; kh++) {
      let th = i32({{ sp[1] }}) + {{ p[1] }} - kh * {{ d[1] }};
      if (th < 0 || th % {{ s[1] }} != 0 || th / {{ s[1] }} >= {{ isz[1] }}) { continue; }
      let ih = u32(th / {{ s[1] }});
      for (var kw = 0; kw < {{ k[2] }}; kw++) {
        let tw = i32({{ sp[2] }}) + {{ p[2] }} - kw * {{ d[2] }};
        if (tw < 0 || tw % {{ s[2] }} != 0 || tw / {{ s[2] }} >= {{ isz[2] }}) { continue; }
        let iw = u32(tw / {{ s[2] }});
        for (var icl = 0u; icl < {{ icg }}u; icl++) {
          let ic = g * {{ icg }}u + icl;
          let xi = o0 * {{ xs[0] }}u + ic * {{ xs[1] }}u + id * {{ xs[2] }}u + ih * {{ xs[3] }}u + iw * {{ xs[4] }}u;
          let wi = ((ic * {{ ocg }}u + ocl) * {{ k[0] }}u + u32(kd)) * {{ k[1] * k[2] }}u + u32(kh) * {{ k[2] }}u + u32(kw);
          acc += f32(x[xi]) * w[wi];
        }
      }
    }
  }
  y[i] = {{ S }}(activate(vec4<f32>(acc), o1 / 4u)[o1 % 4u]);
}
