{# Device ceilings for the roofline: a compute peak (independent FMA chains, no memory
   traffic in the loop) and a bandwidth figure (a vec4 copy, one read and one write per
   element). Entry points: `fma_peak` writes `out`; `copy` reads `src` and writes `dst`.
   Each fma_peak invocation does ITERS x CHAINS vec4 FMAs = ITERS * CHAINS * 8 flops. #}
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size({{ wg }})
fn fma_peak(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * {{ pitch }}u;
  let seed = f32(i) * 1e-7;
  let m = vec4<f32>(0.9999, 0.9998, 0.9997, 0.9996);
  let k = vec4<f32>(1e-4, 2e-4, 3e-4, 4e-4);
{$ for c in range(chains) $}
  var a{{ c }} = vec4<f32>(seed + {{ c }}.0, 0.5, 0.25, 0.125);
{$ endfor $}
  for (var it = 0u; it < {{ iters }}u; it = it + 1u) {
{$ for c in range(chains) $}
    a{{ c }} = fma(a{{ c }}, m, k);
{$ endfor $}
  }
  out[i] = {$ for c in range(chains) $}a{{ c }}{$ if not loop.last $} + {$ endif $}{$ endfor $};
}

@compute @workgroup_size({{ wg }})
fn copy(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * {{ pitch }}u;
  if (i >= {{ n }}u) { return; }
  dst[i] = src[i];
}
