{# RGB tensor (channels last, padded to 4) -> 8-bit Y'CbCr 4:2:0 planes packed 4 bytes per u32.
   Entry `luma` writes 4 luma bytes per invocation; entry `chroma` writes 4 Cb and 4 Cr bytes.
   Chroma is low-passed, not point-sampled: the mean of rows 2j, 2j+1 (centred) and of
   columns 2i, 2i+1 (h_center) or [1, 2, 1] / 4 across columns 2i-1, 2i, 2i+1 (co-sited,
   mirrored at the left edge): the exact inverse of yuv_to_rgb.wgsl's upsampler.
   With an RGB tensor of another size than the planes (src_width x src_height: the model's
   output at a scaled-down input), each pixel is the bilinear mix of the four RGB texels
   around its centre: the output size stays constant whatever the scale.
   At exactly twice the RGB's size (x2: mode bilinear, ONNX Resize's linear with half-pixel
   centres, edges clamped) the weights are fixed: an output pixel 2m or 2m+1 is 3/4 of texel m
   and 1/4 of m-1 or m+1, so a luma word's four pixels read 2x4 texels, not 4x4; and a
   centred chroma sample, the mean of a 2x2 block of such pixels, is (chroma being linear in
   RGB) the chroma of texels i-1, i, i+1 weighted 1/8, 3/4, 1/8 each way: 9 reads, not 16. #}
@group(0) @binding(0) var<storage, read> rgb: array<vec4<{{ S }}>>;
@group(0) @binding(1) var<storage, read_write> planes: array<u32>;

const W: i32 = {{ width }};
const H: i32 = {{ height }};
const CW: i32 = {{ (width + 1) // 2 }};
const CH: i32 = {{ (height + 1) // 2 }};
const SW: i32 = {{ src_width }};
const SH: i32 = {{ src_height }};

fn texel(x: i32, y: i32) -> vec3<f32> {
  return vec4<f32>(rgb[u32(clamp(y, 0, SH - 1) * SW + clamp(x, 0, SW - 1))]).xyz;
}

fn pix(x: i32, y: i32) -> vec3<f32> {
  var xx = x;
  if (xx < 0) { xx = -xx; }
  xx = min(xx, W - 1);
  let yy = clamp(y, 0, H - 1);
{$ if src_width == width and src_height == height $}
  return texel(xx, yy);
{$ else $}
  let sx = clamp((f32(xx) + 0.5) * {{ (src_width / width)|f32 }} - 0.5, 0.0, f32(SW - 1));
  let sy = clamp((f32(yy) + 0.5) * {{ (src_height / height)|f32 }} - 0.5, 0.0, f32(SH - 1));
  let x0 = i32(floor(sx));
  let y0 = i32(floor(sy));
  let fx = sx - f32(x0);
  let fy = sy - f32(y0);
  let top = mix(texel(x0, y0), texel(x0 + 1, y0), fx);
  let bottom = mix(texel(x0, y0 + 1), texel(x0 + 1, y0 + 1), fx);
  return mix(top, bottom, fy);
{$ endif $}
}

fn luma_code(c: vec3<f32>) -> u32 {
  let yl = {{ kr|f32 }} * c.x + {{ (1.0 - kr - kb)|f32 }} * c.y + {{ kb|f32 }} * c.z;
  return u32(clamp(round(yl * {{ y_scale|f32 }} + {{ y_offset|f32 }}), 0.0, 255.0));
}

fn chroma_of(c: vec3<f32>) -> vec2<f32> {
  let yl = {{ kr|f32 }} * c.x + {{ (1.0 - kr - kb)|f32 }} * c.y + {{ kb|f32 }} * c.z;
  return vec2<f32>((c.z - yl) / {{ (2.0 * (1.0 - kb))|f32 }}, (c.x - yl) / {{ (2.0 * (1.0 - kr))|f32 }});
}

{$ if x2 $}
fn row4(x: i32, y: i32) -> array<vec3<f32>, 4> {
  // texels x-1 .. x+2 of row y, clamped
  return array<vec3<f32>, 4>(texel(x - 1, y), texel(x, y), texel(x + 1, y), texel(x + 2, y));
}

fn up2(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
  // the output pixel 1/4 of the way from texel b towards texel a
  return 0.25 * a + 0.75 * b;
}

@compute @workgroup_size(16, 4, 1)
fn luma(@builtin(global_invocation_id) gid: vec3<u32>) {
  let x0 = i32(gid.x) * 4;
  let y = i32(gid.y);
  if (x0 >= W || y >= H) { return; }
  let m = x0 / 2;  // output pixels x0 .. x0+3 are texels m-1 .. m+2's
  let n = y / 2;
  var near = row4(m, n);
  var far = row4(m, select(n + 1, n - 1, y % 2 == 0));
  let t0 = up2(far[0], near[0]);
  let t1 = up2(far[1], near[1]);
  let t2 = up2(far[2], near[2]);
  let t3 = up2(far[3], near[3]);
  let word = luma_code(up2(t0, t1)) | (luma_code(up2(t2, t1)) << 8u)
    | (luma_code(up2(t1, t2)) << 16u) | (luma_code(up2(t3, t2)) << 24u);
  planes[u32(y) * {{ y_pitch // 4 }}u + u32(x0 / 4)] = word;
}
{$ else $}
@compute @workgroup_size(16, 4, 1)
fn luma(@builtin(global_invocation_id) gid: vec3<u32>) {
  let x0 = i32(gid.x) * 4;
  let y = i32(gid.y);
  if (x0 >= W || y >= H) { return; }
  var word = 0u;
  for (var k = 0; k < 4; k++) {
    let x = min(x0 + k, W - 1);
    word = word | (luma_code(pix(x, y)) << (8u * u32(k)));
  }
  planes[u32(y) * {{ y_pitch // 4 }}u + u32(x0 / 4)] = word;
}
{$ endif $}

{$ if x2 and h_center $}
fn tri(a: vec3<f32>, b: vec3<f32>, c: vec3<f32>) -> vec3<f32> {
  return 0.125 * a + 0.75 * b + 0.125 * c;
}

fn chroma_sample(i: i32, j: i32) -> vec2<f32> {
  let up = tri(texel(i - 1, j - 1), texel(i, j - 1), texel(i + 1, j - 1));
  let mid = tri(texel(i - 1, j), texel(i, j), texel(i + 1, j));
  let down = tri(texel(i - 1, j + 1), texel(i, j + 1), texel(i + 1, j + 1));
  return chroma_of(tri(up, mid, down));
}
{$ else $}
fn chroma_sample(i: i32, j: i32) -> vec2<f32> {
  var acc = vec2<f32>(0.0);
  for (var r = 0; r < 2; r++) {
    let y = 2 * j + r;
{$ if h_center $}
    acc += 2.0 * (chroma_of(pix(2 * i, y)) + chroma_of(pix(2 * i + 1, y)));
{$ else $}
    acc += chroma_of(pix(2 * i - 1, y)) + 2.0 * chroma_of(pix(2 * i, y)) + chroma_of(pix(2 * i + 1, y));
{$ endif $}
  }
  return acc / 8.0;
}
{$ endif $}

@compute @workgroup_size(16, 4, 1)
fn chroma(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i0 = i32(gid.x) * 4;
  let j = i32(gid.y);
  if (i0 >= CW || j >= CH) { return; }
  var wb = 0u;
  var wr = 0u;
  for (var k = 0; k < 4; k++) {
    let c = chroma_sample(min(i0 + k, CW - 1), j);
    let cb = u32(clamp(round(c.x * {{ c_scale|f32 }} + 128.0), 0.0, 255.0));
    let cr = u32(clamp(round(c.y * {{ c_scale|f32 }} + 128.0), 0.0, 255.0));
    wb = wb | (cb << (8u * u32(k)));
    wr = wr | (cr << (8u * u32(k)));
  }
  let row = u32(j) * {{ c_pitch // 4 }}u + u32(i0 / 4);
  planes[{{ cb_offset // 4 }}u + row] = wb;
  planes[{{ cr_offset // 4 }}u + row] = wr;
}
