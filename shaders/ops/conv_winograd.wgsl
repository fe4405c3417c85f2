{# Winograd F(m x m, r x r) convolution, stride 1, groups 1, on channels-last pack-4 tensors,
   fused in one kernel: each invocation reads the (m+r-1) x (TX*m+r-1) input patch of TX
   horizontally adjacent output tiles, transforms it (V = B^T d B, adds only), multiplies it
   with the pre-transformed weights (U = G g G^T, packed at load) at each of the (m+r-1)^2 tile
   positions for OCB blocks of 4 output channels, and transforms the products back
   (Y = A^T M A) with bias, activation and PReLU in the store. No transformed tensor goes
   through memory.
   x = groups of TX tile columns, y = tile rows of this band, z = batch; with `sg` (weights
   shared through subgroup broadcasts, a 1-D workgroup) x = this band's COLS groups of tiles
   a row, one row after another, and y = 1.
   params = (first channel block, first tile row, input base, output base), the bases in
   vec4 units, then the sizes (conv_grouped_io.wgsl). #}
{$ set A = m + ksize - 1 $}
{$ set COLS = tx * m + ksize - 1 $}
{# sum_k coeffs[k] * <pre><k * mul + off><post>, zero terms left out, +-1 as a sign #}
{$ macro lincomb(coeffs, pre, mul, off, post) $}({$ set first = namespace(v=true) $}{$ for c in coeffs $}{$ if c != 0 $}{$ if first.v $}{$ if c == -1 $}-{$ elif c != 1 $}{{ c|f32 }} * {$ endif $}{$ else $}{$ if c < 0 $} - {$ else $} + {$ endif $}{$ if c != 1 and c != -1 $}{{ (c if c > 0 else -c)|f32 }} * {$ endif $}{$ endif $}{{ pre }}{{ loop.index0 * mul + off }}{{ post }}{$ set first.v = false $}{$ endif $}{$ endfor $}){$ endmacro $}
{$ include "conv_grouped_io.wgsl" $}
{$ from "conv_grid.wgsl" import entry, position $}

{# one input block: load the patch, transform it, multiply-accumulate every position #}
{$ macro input_block() $}
{$ for i in range(A) $}
{$ for j in range(COLS) $}
    let d{{ i }}_{{ j }} = load(n, iy0 + {{ i }}, ix0 + {{ j }}, ic4);
{$ endfor $}
{$ endfor $}
{$ for r in range(A) $}
{$ for j in range(COLS) $}
    let s{{ r }}_{{ j }} = {{ lincomb(bt[r], "d", 1, 0, "_%d" % j) }};
{$ endfor $}
{$ endfor $}
{$ if sg $}
{$ for t in range(tx) $}
{$ for r in range(A) $}
{$ for c in range(A) $}
    let v{{ t }}_{{ r * A + c }} = {{ lincomb(bt[c], "s%d_" % r, 1, t * m, "") }};
{$ endfor $}
{$ endfor $}
{$ endfor $}
{# the lanes load this input block's weights together, two matrices per 8 lanes (a column
   each), and broadcast each column to all lanes: on lavapipe one per-lane load instead of
   eight, and the broadcast is a register shuffle #}
{$ for o in range(ocb) $}
{$ for k in range(0, A * A, 2) $}
    {
      let wl = w[ic4 * {{ ocb * A * A }}u + {{ o * A * A + k }}u + ((lane >> 2u) & 1u)][lane & 3u];
{$ for kk in range(2) $}
{$ for j in range(in_lanes) $}
      let c{{ kk }}_{{ j }} = subgroupBroadcast(wl, {{ 4 * kk + j }}u);
{$ endfor $}
{$ for t in range(tx) $}
      acc{{ o }}_{{ t }}_{{ k + kk }} += {$ for j in range(in_lanes) $}{{ " + " if j else "" }}c{{ kk }}_{{ j }} * v{{ t }}_{{ k + kk }}.{{ "xyzw"[j] }}{$ endfor $};
{$ endfor $}
{$ endfor $}
    }
{$ endfor $}
{$ endfor $}
{$ else $}
{$ for t in range(tx) $}
    {
{$ for r in range(A) $}
{$ for c in range(A) $}
      let v{{ r * A + c }} = {{ lincomb(bt[c], "s%d_" % r, 1, t * m, "") }};
{$ endfor $}
{$ endfor $}
{$ for o in range(ocb) $}
{$ for k in range(A * A) $}
      {
        let wm = w[{{ o * bstride + k * ic4 }}u + ic4];
{$ if in_lanes == 4 $}
        acc{{ o }}_{{ t }}_{{ k }} += wm * v{{ k }};
{$ else $}
        acc{{ o }}_{{ t }}_{{ k }} += {$ for j in range(in_lanes) $}{{ " + " if j else "" }}wm[{{ j }}] * v{{ k }}.{{ "xyzw"[j] }}{$ endfor $};
{$ endif $}
      }
{$ endfor $}
{$ endfor $}
    }
{$ endfor $}
{$ endif $}
{$ endmacro $}

{{ entry(sg, wgx, wgy) }}
  // No early return (see conv2d.wgsl: with one input block every weight index is then a
  // constant outside control flow, a broadcast load on lavapipe; subgroup broadcasts need
  // every lane): invocations past the edge compute the last tile again and store nothing.
  let n = wid.z;
  let oc4 = params.oc4_base;
{{ position(sg, "ty_out", "tx_out", tx) }}
  let ty = min(ty_out, params.tiles_y - 1u);
  let tx0 = min(tx_out, params.tiles_x - 1u);
{$ for o in range(ocb) $}
{$ for t in range(tx) $}
{$ for k in range(A * A) $}
  var acc{{ o }}_{{ t }}_{{ k }} = vec4<f32>(0.0);
{$ endfor $}
{$ endfor $}
{$ endfor $}
  let iy0 = i32(ty * {{ m }}u) - {{ pt }};
  let ix0 = i32(tx0 * {{ m }}u) - {{ pl }};
{$ if ic4 == 1 $}
  {
    let ic4 = 0u;
{{ input_block() }}  }
{$ else $}
  for (var ic4 = 0u; ic4 < {{ ic4 }}u; ic4++) {
{{ input_block() }}  }
{$ endif $}
{$ for o in range(ocb) $}
  if (oc4 + {{ o }}u < {{ oc4 }}u) {
    let b = bias[min(oc4 + {{ o }}u, {{ oc4 - 1 }}u)];
{$ if mask_lanes $}
    let keep = vec4<u32>((oc4 + {{ o }}u) * 4u) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>({{ oc }}u);
{$ endif $}
{$ for t in range(tx) $}
    {
      // Y = A^T M A
{$ for r in range(m) $}
{$ for c in range(A) $}
      let p{{ r }}_{{ c }} = {{ lincomb(at[r], "acc%d_%d_" % (o, t), A, c, "") }};
{$ endfor $}
{$ endfor $}
      let ox = (tx_out + {{ t }}u) * {{ m }}u;
{$ for r in range(m) $}
{$ for c in range(m) $}
      if ({$ if sg $}live && {$ endif $}ty_out * {{ m }}u + {{ r }}u < params.oh && ox + {{ c }}u < params.ow) {
        let oi = ((n * params.oh + ty_out * {{ m }}u + {{ r }}u) * params.ow + ox + {{ c }}u) * {{ oc4 }}u + oc4 + {{ o }}u - params.out_base;
        let v = {{ lincomb(at[c], "p%d_" % r, 1, 0, "") }};
{$ if mask_lanes $}
        y[oi] = vec4<{{ S }}>(select(vec4<f32>(0.0), activate(v + b, oc4 + {{ o }}u), keep));
{$ else $}
        y[oi] = vec4<{{ S }}>(activate(v + b, oc4 + {{ o }}u));
{$ endif $}
      }
{$ endfor $}
{$ endfor $}
    }
{$ endfor $}
  }
{$ endfor $}
}
