{# Y'CbCr 4:2:0 planes (textures) -> the same planes at another size, bilinear, written packed
   4 bytes per u32 like rgb_to_yuv.wgsl. No RGB detour: each output byte reads four input
   bytes of its own plane. The cheapest 2x the pipeline has (the adaptation's fallback when
   the GPU cannot keep up with the model even at its floor scale). Chroma sample positions are
   scaled as centred (swscale's yuv420p siting). #}
@group(0) @binding(0) var luma_in: texture_2d<f32>;
{$ if nv12 $}
@group(0) @binding(1) var chroma_in: texture_2d<f32>;
{$ else $}
@group(0) @binding(1) var cb_in: texture_2d<f32>;
@group(0) @binding(2) var cr_in: texture_2d<f32>;
{$ endif $}
@group(0) @binding(3) var<storage, read_write> planes: array<u32>;

const IW: i32 = {{ in_width }};
const IH: i32 = {{ in_height }};
const ICW: i32 = {{ (in_width + 1) // 2 }};
const ICH: i32 = {{ (in_height + 1) // 2 }};
const OW: i32 = {{ width }};
const OH: i32 = {{ height }};
const OCW: i32 = {{ (width + 1) // 2 }};
const OCH: i32 = {{ (height + 1) // 2 }};

// bilinear taps of output coordinate o (of n_out) in an input of n_in: (i0, i1, weight of i1)
fn taps(o: i32, n_out: i32, n_in: i32) -> vec3<f32> {
  let s = clamp((f32(o) + 0.5) * f32(n_in) / f32(n_out) - 0.5, 0.0, f32(n_in - 1));
  let i0 = floor(s);
  return vec3<f32>(i0, min(i0 + 1.0, f32(n_in - 1)), s - i0);
}

fn luma_at(x: i32, y: i32) -> f32 {
  let tx = taps(x, OW, IW);
  let ty = taps(y, OH, IH);
  let a = textureLoad(luma_in, vec2<i32>(i32(tx.x), i32(ty.x)), 0).r;
  let b = textureLoad(luma_in, vec2<i32>(i32(tx.y), i32(ty.x)), 0).r;
  let c = textureLoad(luma_in, vec2<i32>(i32(tx.x), i32(ty.y)), 0).r;
  let d = textureLoad(luma_in, vec2<i32>(i32(tx.y), i32(ty.y)), 0).r;
  return mix(mix(a, b, tx.z), mix(c, d, tx.z), ty.z);
}

fn chroma_texel(i: i32, j: i32) -> vec2<f32> {
{$ if nv12 $}
  return textureLoad(chroma_in, vec2<i32>(i, j), 0).rg;
{$ else $}
  return vec2<f32>(textureLoad(cb_in, vec2<i32>(i, j), 0).r, textureLoad(cr_in, vec2<i32>(i, j), 0).r);
{$ endif $}
}

fn chroma_at(i: i32, j: i32) -> vec2<f32> {
  let tx = taps(i, OCW, ICW);
  let ty = taps(j, OCH, ICH);
  let top = mix(chroma_texel(i32(tx.x), i32(ty.x)), chroma_texel(i32(tx.y), i32(ty.x)), tx.z);
  let bottom = mix(chroma_texel(i32(tx.x), i32(ty.y)), chroma_texel(i32(tx.y), i32(ty.y)), tx.z);
  return mix(top, bottom, ty.z);
}

fn code(v: f32) -> u32 {
  return u32(clamp(round(v * 255.0), 0.0, 255.0));
}

@compute @workgroup_size(16, 4, 1)
fn luma(@builtin(global_invocation_id) gid: vec3<u32>) {
  let x0 = i32(gid.x) * 4;
  let y = i32(gid.y);
  if (x0 >= OW || y >= OH) { return; }
  var word = 0u;
  for (var k = 0; k < 4; k++) {
    word = word | (code(luma_at(min(x0 + k, OW - 1), y)) << (8u * u32(k)));
  }
  planes[u32(y) * {{ y_pitch // 4 }}u + u32(x0 / 4)] = word;
}

@compute @workgroup_size(16, 4, 1)
fn chroma(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i0 = i32(gid.x) * 4;
  let j = i32(gid.y);
  if (i0 >= OCW || j >= OCH) { return; }
  var wb = 0u;
  var wr = 0u;
  for (var k = 0; k < 4; k++) {
    let c = chroma_at(min(i0 + k, OCW - 1), j);
    wb = wb | (code(c.x) << (8u * u32(k)));
    wr = wr | (code(c.y) << (8u * u32(k)));
  }
  let row = u32(j) * {{ c_pitch // 4 }}u + u32(i0 / 4);
  planes[{{ cb_offset // 4 }}u + row] = wb;
  planes[{{ cr_offset // 4 }}u + row] = wr;
}
