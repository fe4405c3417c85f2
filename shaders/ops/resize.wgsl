{# Resize / Upsample (infer/ops/resize.py): one output element per invocation.
   Each resized axis maps its output coordinate to a source coordinate (ctm), then gives taps:
   1 (nearest), 2 (linear) or 4 (cubic) input offsets and weights; the output is the sum over
   the product of the taps. Axes in `copy` pass their coordinate straight through.
   Except for tf_crop_and_resize and half_pixel_symmetric, the sizes and scales are read from
   `sz` (ops.common.Sizes; the scale as f32 bits): one kernel serves every frame size. #}
{$ from "common.wgsl" import linear_index, decode, zero_pad_lanes, sizes_decl $}
@group(0) @binding(0) var<storage, read> x: array<{{ S }}>;
@group(0) @binding(1) var<storage, read_write> y: array<{{ S }}>;
{$ if sizes $}
{{ sizes_decl(2, sizes) }}
{$ endif $}

{$ if mode == "cubic" $}
fn cubic_weights(t: f32) -> vec4<f32> {
  let a = {{ cubic_a | f32 }};
  let u0 = t + 1.0;
  let u3 = 2.0 - t;
  let u2 = 1.0 - t;
  return vec4<f32>(
    ((a * u0 - 5.0 * a) * u0 + 8.0 * a) * u0 - 4.0 * a,
    ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0,
    ((a + 2.0) * u2 - (a + 3.0)) * u2 * u2 + 1.0,
    ((a * u3 - 5.0 * a) * u3 + 8.0 * a) * u3 - 4.0 * a);
}
{$ endif $}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
{{ linear_index(pitch, out.total) }}
{{ decode(out, "o") }}
{{ zero_pad_lanes(out, "o", "y") }}
  let base = {$ for c in copy $}o{{ c[0] }} * {{ c[1]|u }} + {$ endfor $}0u;
{$ for ax in axes $}
{$ set k = ax.k $}
  let f{{ k }} = f32(o{{ k }});
{$ if ctm == "half_pixel" $}
  let c{{ k }} = (f{{ k }} + 0.5) / {{ ax.scale | f32 }} - 0.5;
{$ elif ctm == "half_pixel_symmetric" $}
  let c{{ k }} = {{ ((ax.n / 2) * (1 - ax.m / (ax.scale * ax.n))) | f32 }} + ((f{{ k }} + 0.5) / {{ ax.scale | f32 }} - 0.5);
{$ elif ctm == "pytorch_half_pixel" $}
{$ if ax.m > 1 $}
  let c{{ k }} = (f{{ k }} + 0.5) / {{ ax.scale | f32 }} - 0.5;
{$ else $}
  let c{{ k }} = 0.0 * f{{ k }};
{$ endif $}
{$ elif ctm == "align_corners" $}
{$ if ax.m > 1 $}
  let c{{ k }} = f{{ k }} * {{ ax.nm1 | f32 }} / {{ ax.mm1 | f32 }};
{$ else $}
  let c{{ k }} = 0.0 * f{{ k }};
{$ endif $}
{$ elif ctm == "asymmetric" $}
  let c{{ k }} = f{{ k }} / {{ ax.scale | f32 }};
{$ elif ctm == "tf_half_pixel_for_nearest" $}
  let c{{ k }} = (f{{ k }} + 0.5) / {{ ax.scale | f32 }};
{$ elif ctm == "tf_crop_and_resize" $}
{$ if ax.m > 1 $}
  let c{{ k }} = {{ (ax.lo * (ax.n - 1)) | f32 }} + f{{ k }} * {{ (ax.hi - ax.lo) | f32 }} * {{ (ax.n - 1) | f32 }} / {{ ax.mm1 | f32 }};
{$ else $}
  let c{{ k }} = {{ (0.5 * (ax.lo + ax.hi) * (ax.n - 1)) | f32 }} + 0.0 * f{{ k }};
{$ endif $}
  if (c{{ k }} < 0.0 || c{{ k }} > {{ (ax.n - 1) | f32 }}) { y[i] = {{ extrapolation | f32 }}; return; }
{$ endif $}
{$ if mode == "nearest" $}
{$ if nearest_mode == "round_prefer_floor" $}
  let r{{ k }} = ceil(c{{ k }} - 0.5);
{$ elif nearest_mode == "round_prefer_ceil" $}
  let r{{ k }} = floor(c{{ k }} + 0.5);
{$ elif nearest_mode == "floor" $}
  let r{{ k }} = floor(c{{ k }});
{$ elif nearest_mode == "ceil" or ax.down $}
  let r{{ k }} = ceil(c{{ k }});
{$ else $}
  let r{{ k }} = trunc(c{{ k }});
{$ endif $}
  var idx{{ k }} = array<u32, 1>(u32(clamp(i32(r{{ k }}), 0, {{ ax.nm1|i }})) * {{ ax.stride|u }});
  var w{{ k }} = array<f32, 1>(1.0);
{$ elif mode == "linear" $}
  let cl{{ k }} = clamp(c{{ k }}, 0.0, {{ ax.nm1 | f32 }});
  let i0{{ k }} = min(u32(cl{{ k }}), {{ ax.nm1|u }});
  let i1{{ k }} = min(i0{{ k }} + 1u, {{ ax.nm1|u }});
  let t{{ k }} = cl{{ k }} - f32(i0{{ k }});
  var idx{{ k }} = array<u32, 2>(i0{{ k }} * {{ ax.stride|u }}, i1{{ k }} * {{ ax.stride|u }});
  var w{{ k }} = array<f32, 2>(1.0 - t{{ k }}, t{{ k }});
{$ else $}
  let fl{{ k }} = floor(c{{ k }});
  var cw{{ k }} = cubic_weights(c{{ k }} - fl{{ k }});
  let j{{ k }} = vec4<i32>(i32(fl{{ k }})) + vec4<i32>(-1, 0, 1, 2);
{$ if exclude_outside $}
  cw{{ k }} = select(vec4<f32>(0.0), cw{{ k }}, j{{ k }} >= vec4<i32>(0) & j{{ k }} < vec4<i32>({{ ax.n|i }}));
  cw{{ k }} = cw{{ k }} / dot(cw{{ k }}, vec4<f32>(1.0));
{$ endif $}
  let jc{{ k }} = vec4<u32>(clamp(j{{ k }}, vec4<i32>(0), vec4<i32>({{ ax.nm1|i }}))) * {{ ax.stride|u }};
  var idx{{ k }} = array<u32, 4>(jc{{ k }}.x, jc{{ k }}.y, jc{{ k }}.z, jc{{ k }}.w);
  var w{{ k }} = array<f32, 4>(cw{{ k }}.x, cw{{ k }}.y, cw{{ k }}.z, cw{{ k }}.w);
{$ endif $}
{$ endfor $}
{$ set taps = {"nearest": 1, "linear": 2, "cubic": 4}[mode] $}
  var acc = 0.0;
{$ for ax in axes $}
  for (var q{{ loop.index0 }} = 0u; q{{ loop.index0 }} < {{ taps }}u; q{{ loop.index0 }}++) {
{$ endfor $}
  acc += {$ for ax in axes $}w{{ ax.k }}[q{{ loop.index0 }}] * {$ endfor $}f32(x[base{$ for ax in axes $} + idx{{ ax.k }}[q{{ loop.index0 }}]{$ endfor $}]);
{$ for ax in axes $}
  }
{$ endfor $}
  y[i] = {{ S }}(acc);
}
