{# Convolution of any spatial rank (1-3) and any group count, one output element per
   invocation: the fallback for what conv2d.wgsl does not cover (grouped, depthwise, 1-D, 3-D). #}
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
  var acc = bias[o1];
  for (var icl = 0u; icl < {{ icg }}u; icl++) {
    let ic = g * {{ icg }}u + icl;
    for (var kd = 0; kd < {{ k[0] }}; kd++) {
      let id = i32({{ sp[0] }} * {{ s[0] }}u) - {{ p[0] }} + kd * {{ d[0] }};
      if (id < 0 || id >= {{ isz[0] }}) { continue; }
      for (var kh = 0; kh < {{ k[1] }}; kh++) {
        let ih = i32({{ sp[1] }} * {{ s[1] }}u) - {{ p[1] }} + kh * {{ d[1] }};
        if (ih < 0 || ih >= {{ isz[1] }}) { continue; }
        for (var kw = 0; kw < {{ k[2] }}; kw++) {
          let iw = i32({{ sp[2] }} * {{ s[2] }}u) - {{ p[2] }} + kw * {{ d[2] }};
          if (iw < 0 || iw >= {{ isz[2] }}) { continue; }
          let xi = o0 * {{ xs[0] }}u + ic * {{ xs[1] }}u + u32(id) * {{ xs[2] }}u + u32(ih) * {{ xs[3] }}u + u32(iw) * {{ xs[4] }}u;
          let wi = ((o1 * {{ icg }}u + icl) * {{ k[0] }}u + u32(kd)) * {{ k[1] * k[2] }}u + u32(kh) * {{ k[2] }}u + u32(kw);
          acc += f32(x[xi]) * w[wi];
        }
      }
    }
  }
  y[i] = {{ S }}(activate(vec4<f32>(acc), o1 / 4u)[o1 % 4u]);
}
