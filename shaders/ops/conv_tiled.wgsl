{# 2-D convolution (groups == 1) as an implicit GEMM with workgroup shared memory, the design
   of onnxruntime's WebGPU conv2d_mm (from TF.js): M = output pixels (batch included),
   N = output channels, K = kh * kw * input channels, never materialised (im2col happens
   while loading the A tile).
   An 8 x 8 workgroup computes a 32-pixel x 32-channel tile; each invocation 4 pixels x one
   vec4 of 4 output channels. Per step of K (8 blocks of 4 input channels), the workgroup
   stages A (32 pixels x 8 vec4 = 4 KiB) and B (8 x 8 mat4x4 = 4 KiB) in shared memory, each
   invocation loading 4 vec4 of A and one mat4 of B, then every invocation runs 8 x 4 mat4
   FMAs out of shared memory. Bias and activation are fused into the store.
   Grid: x, y = tiles of 32 pixels (index wid.x + wid.y * gx), z = groups of 8 output blocks.
   Meant for real GPUs; on lavapipe shared memory is emulated and it is correct but slow. #}
@group(0) @binding(0) var<storage, read> x: array<vec4<{{ S }}>>;
@group(0) @binding(1) var<storage, read> w: array<mat4x4<f32>>;
@group(0) @binding(2) var<uniform> bias: array<vec4<f32>, {{ oc4 }}>;
@group(0) @binding(3) var<storage, read_write> y: array<vec4<{{ S }}>>;
{$ if act.kind == "PRelu" $}
@group(0) @binding(4) var<uniform> act_slope: array<vec4<f32>, {{ oc4 }}>;
{$ endif $}
{$ include "activation.wgsl" $}

var<workgroup> a_tile: array<vec4<f32>, 256>;  // [k block 0..8][pixel 0..32]
var<workgroup> b_tile: array<mat4x4<f32>, 64>;  // [k block 0..8][output block 0..8]

// One vec4 of the implicit im2col matrix: pixel m (row of A), k block kb = (ky, kx, ic4).
fn load_a(m: u32, kb: u32) -> vec4<f32> {
  if (m >= {{ npix }}u || kb >= {{ kblocks }}u) { return vec4<f32>(0.0); }
  let n = m / {{ oh * ow }}u;
  let r = m % {{ oh * ow }}u;
  let oy = r / {{ ow }}u;
  let ox = r % {{ ow }}u;
  let c = kb % {{ ic4 }}u;
  let t = kb / {{ ic4 }}u;
  let iy = i32(oy * {{ sh }}u + (t / {{ kw }}u) * {{ dh }}u) - {{ pt }};
  let ix = i32(ox * {{ sw }}u + (t % {{ kw }}u) * {{ dw }}u) - {{ pl }};
  if (iy < 0 || iy >= {{ ih }} || ix < 0 || ix >= {{ iw }}) { return vec4<f32>(0.0); }
  return vec4<f32>(x[((n * {{ ih }}u + u32(iy)) * {{ iw }}u + u32(ix)) * {{ ic4 }}u + c]);
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let tile = wid.x + wid.y * {{ gx }}u;
  let li = lid.y * 8u + lid.x;
  let ob = wid.z * 8u + lid.x;  // this invocation's output block
  let m0 = tile * 32u + lid.y * 4u;  // its first pixel
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var kt = 0u; kt < {{ ktiles }}u; kt++) {
    for (var q = 0u; q < 4u; q++) {
      let e = li + 64u * q;
      a_tile[e] = load_a(tile * 32u + e % 32u, kt * 8u + e / 32u);
    }
    b_tile[li] = w[(kt * 8u + li / 8u) * {{ oc8 }}u + wid.z * 8u + li % 8u];
    workgroupBarrier();
{$ for kb in range(8) $}
    {
      let wm = b_tile[{{ kb * 8 }}u + lid.x];
      acc0 += wm * a_tile[{{ kb * 32 }}u + lid.y * 4u];
      acc1 += wm * a_tile[{{ kb * 32 + 1 }}u + lid.y * 4u];
      acc2 += wm * a_tile[{{ kb * 32 + 2 }}u + lid.y * 4u];
      acc3 += wm * a_tile[{{ kb * 32 + 3 }}u + lid.y * 4u];
    }
{$ endfor $}
    workgroupBarrier();
  }
  if (ob >= {{ oc4 }}u) { return; }
  let b = bias[ob];
{$ if mask_lanes $}
  let keep = vec4<u32>(ob * 4u) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>({{ oc }}u);
{$ endif $}
{$ for i in range(4) $}
  if (m0 + {{ i }}u < {{ npix }}u) {
{$ if mask_lanes $}
    y[(m0 + {{ i }}u) * {{ oc4 }}u + ob] = vec4<{{ S }}>(select(vec4<f32>(0.0), activate(acc{{ i }} + b, ob), keep));
{$ else $}
    y[(m0 + {{ i }}u) * {{ oc4 }}u + ob] = vec4<{{ S }}>(activate(acc{{ i }} + b, ob));
{$ endif $}
  }
{$ endfor $}
}
