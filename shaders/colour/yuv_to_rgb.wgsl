{# Y'CbCr 4:2:0 planes (textures) -> RGB in [0, 1] written into the model's input tensor
   (channels last, padded to 4: one vec4 per pixel, .w = 0). Float RGB is not clipped, so an
   out-of-gamut colour survives the round trip.
   Chroma is upsampled with a filter matched to rgb_to_yuv.wgsl's downsampler so that
   down(up(c)) == c exactly (a random frame survives the round trip), yet follows gradients:
   for a centred sample (vertical always; horizontal when h_center, swscale's siting), the
   two pixels it covers get c[j] -/+ (c[j+1] - c[j-1]) / 8, which the downsampler's mean of
   the pair undoes. For co-sited "left" siting (H.264's default): even columns
   (-c[i-1] + 6 c[i] - c[i+1]) / 4, odd columns (c[i] + c[i+1]) / 2, mirrored at the left
   edge, undone by the downsampler's [1, 2, 1] / 4.
   With out_width x out_height smaller than the frame (dynamic resolution: the model runs on a
   scaled-down input), each RGB pixel is the bilinear mix of the four source pixels around
   its centre. At the frame's own size one invocation makes a 2x2 block: the 3x3 chroma
   samples around it are read once for its four pixels (per pixel, each pixel read nine: on
   lavapipe texture reads are most of this pass's cost), same arithmetic, same result. #}
@group(0) @binding(0) var luma: texture_2d<f32>;
{$ if nv12 $}
@group(0) @binding(1) var chroma: texture_2d<f32>;
{$ else $}
@group(0) @binding(1) var cb_plane: texture_2d<f32>;
@group(0) @binding(2) var cr_plane: texture_2d<f32>;
{$ endif $}
@group(0) @binding(3) var<storage, read_write> rgb: array<vec4<{{ S }}>>;

const W: i32 = {{ width }};
const H: i32 = {{ height }};
const CW: i32 = {{ (width + 1) // 2 }};
const CH: i32 = {{ (height + 1) // 2 }};
const OW: i32 = {{ out_width }};
const OH: i32 = {{ out_height }};

fn c_at(i: i32, j: i32) -> vec2<f32> {
  // one chroma sample (Cb, Cr) in code values / 255, columns mirrored, rows clamped
  var ci = i;
{$ if h_center $}
  ci = clamp(ci, 0, CW - 1);
{$ else $}
  if (ci < 0) { ci = -ci; }
  ci = min(ci, CW - 1);
{$ endif $}
  let cj = clamp(j, 0, CH - 1);
{$ if nv12 $}
  return textureLoad(chroma, vec2<i32>(ci, cj), 0).rg;
{$ else $}
  return vec2<f32>(textureLoad(cb_plane, vec2<i32>(ci, cj), 0).r, textureLoad(cr_plane, vec2<i32>(ci, cj), 0).r);
{$ endif $}
}

fn c_mix(a: vec2<f32>, b: vec2<f32>, c: vec2<f32>, odd: bool) -> vec2<f32> {
  // the horizontal upsampler at column 2i (even) or 2i+1 (odd) from chroma columns
  // i-1 (a), i (b), i+1 (c)
{$ if h_center $}
  let slope = (c - a) * 0.125;
  if (!odd) { return b - slope; }
  return b + slope;
{$ else $}
  if (!odd) {
    return (-a + 6.0 * b - c) * 0.25;
  }
  return (b + c) * 0.5;
{$ endif $}
}

fn c_row(x: i32, j: i32) -> vec2<f32> {
  let i = x / 2;
  return c_mix(c_at(i - 1, j), c_at(i, j), c_at(i + 1, j), x % 2 != 0);
}

fn rgb_of(x: i32, y: i32, c: vec2<f32>) -> vec3<f32> {
  let yv = textureLoad(luma, vec2<i32>(x, y), 0).r * 255.0;
  let yl = (yv - {{ y_offset|f32 }}) / {{ y_scale|f32 }};
  let cb = (c.x * 255.0 - 128.0) / {{ c_scale|f32 }};
  let cr = (c.y * 255.0 - 128.0) / {{ c_scale|f32 }};
  let r = yl + {{ (2.0 * (1.0 - kr))|f32 }} * cr;
  let b = yl + {{ (2.0 * (1.0 - kb))|f32 }} * cb;
  let g = (yl - {{ kr|f32 }} * r - {{ kb|f32 }} * b) / {{ (1.0 - kr - kb)|f32 }};
  return vec3<f32>(r, g, b);
}

fn v_mix(up: vec2<f32>, mid: vec2<f32>, down: vec2<f32>, odd: bool) -> vec2<f32> {
  let slope = (down - up) * 0.125;
  if (odd) { return mid + slope; }
  return mid - slope;
}

fn v_cols(
  a0: vec2<f32>, b0: vec2<f32>, e0: vec2<f32>,
  a1: vec2<f32>, b1: vec2<f32>, e1: vec2<f32>,
  a2: vec2<f32>, b2: vec2<f32>, e2: vec2<f32>, odd: bool,
) -> mat3x2<f32> {
  return mat3x2<f32>(c_mix(a0, b0, e0, odd), c_mix(a1, b1, e1, odd), c_mix(a2, b2, e2, odd));
}

fn rgb_at(x: i32, y: i32) -> vec3<f32> {
  let j = y / 2;
  return rgb_of(x, y, v_mix(c_row(x, j - 1), c_row(x, j), c_row(x, j + 1), y % 2 != 0));
}

fn put(x: i32, y: i32, c: vec3<f32>) {
  rgb[u32(y * OW + x)] = vec4<{{ S }}>(vec4<f32>(c, 0.0));
}

{$ if out_width == width and out_height == height $}
@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = i32(gid.x);
  let j = i32(gid.y);
  if (i >= CW || j >= CH) { return; }
  // chroma columns i-1, i, i+1 of rows j-1, j, j+1, each read once (named, not an array:
  // llvmpipe puts an indexed local array in memory)
  let a0 = c_at(i - 1, j - 1);
  let b0 = c_at(i, j - 1);
  let e0 = c_at(i + 1, j - 1);
  let a1 = c_at(i - 1, j);
  let b1 = c_at(i, j);
  let e1 = c_at(i + 1, j);
  let a2 = c_at(i - 1, j + 1);
  let b2 = c_at(i, j + 1);
  let e2 = c_at(i + 1, j + 1);
  let x = 2 * i;
  let y = 2 * j;
  let even = v_cols(a0, b0, e0, a1, b1, e1, a2, b2, e2, false);
  put(x, y, rgb_of(x, y, v_mix(even[0], even[1], even[2], false)));
  if (y + 1 < H) { put(x, y + 1, rgb_of(x, y + 1, v_mix(even[0], even[1], even[2], true))); }
  if (x + 1 < W) {
    let odd = v_cols(a0, b0, e0, a1, b1, e1, a2, b2, e2, true);
    put(x + 1, y, rgb_of(x + 1, y, v_mix(odd[0], odd[1], odd[2], false)));
    if (y + 1 < H) {
      put(x + 1, y + 1, rgb_of(x + 1, y + 1, v_mix(odd[0], odd[1], odd[2], true)));
    }
  }
}
{$ else $}
@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let x = i32(gid.x);
  let y = i32(gid.y);
  if (x >= OW || y >= OH) { return; }
  let sx = clamp((f32(x) + 0.5) * {{ (width / out_width)|f32 }} - 0.5, 0.0, f32(W - 1));
  let sy = clamp((f32(y) + 0.5) * {{ (height / out_height)|f32 }} - 0.5, 0.0, f32(H - 1));
  let x0 = i32(floor(sx));
  let y0 = i32(floor(sy));
  let x1 = min(x0 + 1, W - 1);
  let y1 = min(y0 + 1, H - 1);
  let fx = sx - f32(x0);
  let fy = sy - f32(y0);
  let top = mix(rgb_at(x0, y0), rgb_at(x1, y0), fx);
  let bottom = mix(rgb_at(x0, y1), rgb_at(x1, y1), fx);
  put(x, y, mix(top, bottom, fy));
}
{$ endif $}
