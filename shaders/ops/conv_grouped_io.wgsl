{# The bindings and the input read shared by the conv kernels that run one dispatch per group
   of output blocks and per row band (conv2d.wgsl, conv_winograd.wgsl; infer/ops/conv_site.py
   grouped_dispatches): input, this group's weight window, bias, params (first channel block,
   first row, input and output base of the band), output, PReLU slopes. `load` reads one
   input vec4, zero outside the image.
   The frame's size is in `params` too, not in the code: one compiled kernel serves every
   input size (a stream adapting its scale, a resized window), where constants would make
   each new size new machine code (seconds per conv on lavapipe). #}
struct Params {
  oc4_base: u32, row0: u32, in_base: u32, out_base: u32,
  ih: u32, iw: u32, oh: u32, ow: u32,
  tiles_y: u32, tiles_x: u32, cols: u32, band_tiles: u32,
};

@group(0) @binding(0) var<storage, read> x: array<vec4<{{ S }}>>;
{$ if weights_uniform $}
@group(0) @binding(1) var<uniform> w: array<mat4x4<f32>, {{ wn }}>;
{$ else $}
@group(0) @binding(1) var<storage, read> w: array<mat4x4<f32>>;
{$ endif $}
@group(0) @binding(2) var<uniform> bias: array<vec4<f32>, {{ oc4 }}>;
@group(0) @binding(3) var<uniform> params: Params;
@group(0) @binding(4) var<storage, read_write> y: array<vec4<{{ S }}>>;
{$ if act.kind == "PRelu" $}
@group(0) @binding(5) var<uniform> act_slope: array<vec4<f32>, {{ oc4 }}>;
{$ endif $}
{$ include "activation.wgsl" $}

fn load(n: u32, iy: i32, ix: i32, ic4: u32) -> vec4<f32> {
  let ih = i32(params.ih);
  let iw = i32(params.iw);
  let inside = iy >= 0 && iy < ih && ix >= 0 && ix < iw;
  let cy = u32(clamp(iy, 0, ih - 1));
  let cx = u32(clamp(ix, 0, iw - 1));
  let v = vec4<f32>(x[((n * params.ih + cy) * params.iw + cx) * {{ ic4 }}u + ic4 - params.in_base]);
  return select(vec4<f32>(0.0), v, inside);
}
