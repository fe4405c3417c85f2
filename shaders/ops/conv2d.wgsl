{# 2-D convolution (groups == 1) on channels-last, pack-4 tensors.
   Each invocation computes PX horizontally adjacent output pixels for OCB blocks of 4 output
   channels: one vec4 input load (4 input channels) feeds OCB mat4x4 FMAs per pixel, and the
   weights are indexed only by constants and loop counters, so every invocation reads the
   same weight. With one input block of fewer than 4 channels (an RGB input), the zero lanes'
   columns are skipped: a quarter of the first layer's FMAs.
   With one input block (an RGB or gray first layer) there is no loop, so every weight index
   is a constant, and no early return: lavapipe reads a uniform buffer at a constant index
   outside control flow as one load broadcast to all lanes, and anything else (a loop
   counter's index, or code after a divergent return) as a per-lane gather. Measured on the
   3->64 5x5 first layer at 320x180, alternated in one process: 1.34x. Invocations past the
   edge compute the last pixels again and store nothing.
   One dispatch per group of OCB channel blocks (and per row band of a large frame):
   x = column groups, y = output rows of this band, z = batch; with `sg` (the weights loaded
   once per subgroup and broadcast, conv_winograd.wgsl's scheme; a 1-D workgroup) x = this
   band's COLS column groups a row, one row after another, and y = 1.
   params = (first channel block, first output row, input base, output base, then the sizes:
   conv_grouped_io.wgsl). #}
{$ set PX = px $}
{$ set OCB = ocb $}
{$ include "conv_grouped_io.wgsl" $}
{$ from "conv_grid.wgsl" import entry, position $}

{{ entry(sg, wgx, wgy) }}
  // The weight window of this dispatch is bound per channel group, so weight indices are
  // compile-time constants plus the ic4 loop counter: the same for every invocation.
  let n = wid.z;
  let oc4 = params.oc4_base;
{{ position(sg, "oy_out", "ox_out", PX) }}
  let oy = min(oy_out, params.oh - 1u);
  let ox0 = min(ox_out, params.ow - 1u);
{$ for o in range(OCB) $}
  let b{{ o }} = bias[min(oc4 + {{ o }}u, {{ oc4 - 1 }}u)];
{$ for p in range(PX) $}
  var acc{{ o }}_{{ p }} = b{{ o }};
{$ endfor $}
{$ endfor $}
  let iy0 = i32(oy * {{ sh }}u) - {{ pt }};
  let ix0 = i32(ox0 * {{ sw }}u) - {{ pl }};
{$ if ic4 == 1 $}
  {
    let ic4 = 0u;
{$ else $}
  for (var ic4 = 0u; ic4 < {{ ic4 }}u; ic4++) {
{$ endif $}
{$ for ky in range(kh) $}
    {
      let iy = iy0 + {{ ky * dh }};
{$ if sg $}
{# this row's weight matrices, two per 8 lanes (a column each), broadcast where used #}
{$ for q in range(row_mats // 2) $}
      let wl{{ q }} = w[(ic4 * {{ kh }}u + {{ ky }}u) * {{ row_mats }}u + {{ 2 * q }}u + ((lane >> 2u) & 1u)][lane & 3u];
{$ endfor $}
{$ endif $}
{$ if sw == 1 $}
{# stride 1: the PX pixels' taps along a row overlap, so load each input once per row #}
{$ for j in range(PX + (kw - 1) * dw) $}
      let r{{ j }} = load(n, iy, ix0 + {{ j }}, ic4);
{$ endfor $}
{$ endif $}
{$ for kx in range(kw) $}
      {
{$ for p in range(PX) $}
{$ if sw == 1 $}
        let v{{ p }} = r{{ p + kx * dw }};
{$ else $}
        let v{{ p }} = load(n, iy, ix0 + {{ p * sw + kx * dw }}, ic4);
{$ endif $}
{$ endfor $}
{$ for o in range(OCB) $}
        {
{$ if sg $}
{$ set q = kx * OCB + o $}
          let wm = mat4x4<f32>({$ for j in range(4) $}{{ ", " if j else "" }}subgroupBroadcast(wl{{ q // 2 }}, {{ 4 * (q % 2) + j }}u){$ endfor $});
{$ else $}
          let wm = w[{{ o * bstride + (ky * kw + kx) * ic4 }}u + ic4];
{$ endif $}
{$ for p in range(PX) $}
{$ if in_lanes == 4 $}
          acc{{ o }}_{{ p }} += wm * v{{ p }};
{$ else $}
          acc{{ o }}_{{ p }} += {$ for j in range(in_lanes) $}{{ " + " if j else "" }}wm[{{ j }}] * v{{ p }}.{{ "xyzw"[j] }}{$ endfor $};
{$ endif $}
{$ endfor $}
        }
{$ endfor $}
      }
{$ endfor $}
    }
{$ endfor $}
  }
  if ({$ if sg $}!live || {$ endif $}oy_out >= params.oh) { return; }
  let obase = ((n * params.oh + oy_out) * params.ow + ox_out) * {{ oc4 }}u + oc4 - params.out_base;
{$ for o in range(OCB) $}
  if (oc4 + {{ o }}u < {{ oc4 }}u) {
{$ if mask_lanes $}
    let keep = vec4<u32>((oc4 + {{ o }}u) * 4u) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>({{ oc }}u);
{$ endif $}
{$ for p in range(PX) $}
    if (ox_out + {{ p }}u < params.ow) {
{$ if mask_lanes $}
      y[obase + {{ p * oc4 + o }}u] = vec4<{{ S }}>(select(vec4<f32>(0.0), activate(acc{{ o }}_{{ p }}, oc4 + {{ o }}u), keep));
{$ else $}
      y[obase + {{ p * oc4 + o }}u] = vec4<{{ S }}>(activate(acc{{ o }}_{{ p }}, oc4 + {{ o }}u));
{$ endif $}
    }
{$ endfor $}
  }
{$ endfor $}
}
