// The viewer page's last step (stream/static/render.js): the model's output, NCHW float32
// RGB in 0..1 as the browser bundle's run() returns it, drawn into the WebGPU canvas one
// texel per output pixel (the canvas has the output's size; CSS scales it like the <video>).

struct Dims {
  width: u32,
  height: u32,
}

@group(0) @binding(0) var<storage, read> picture: array<f32>;
@group(0) @binding(1) var<uniform> dims: Dims;

@vertex
fn vs(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
  // one triangle that covers the canvas
  let xy = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
  return vec4<f32>(xy * 2.0 - 1.0, 0.0, 1.0);
}

@fragment
fn fs(@builtin(position) p: vec4<f32>) -> @location(0) vec4<f32> {
  let x = min(u32(p.x), dims.width - 1u);
  let y = min(u32(p.y), dims.height - 1u);
  let plane = dims.width * dims.height;
  let k = y * dims.width + x;
  let rgb = vec3<f32>(picture[k], picture[plane + k], picture[2u * plane + k]);
  return vec4<f32>(clamp(rgb, vec3<f32>(0.0), vec3<f32>(1.0)), 1.0);
}
