{# Shape/layout ops (infer/ops/shape.py): one output element per invocation, a pure copy.
   `kind` picks the map from output logical coordinates to the input element:
     affine   Transpose, Slice: base + sum o_k * steps[k] (steps may be negative)
     reshape  Reshape, Flatten: through the logical row-major linear index
     pad      Pad: per-axis constant / edge / reflect / wrap after cropping
     d2s, s2d DepthToSpace (DCR, CRD), SpaceToDepth
     concat   Concat: several inputs; a dispatch covers the output's axis range [lo, ..)
     tile     Tile: input coordinate k is o_k % in_shape[k]
     gather   Gather with an index table: output axes axis .. axis+q-1 index the table
   d2s, s2d and a concat along channels read the sizes that change with the frame from `sz`
   (ops.common.Sizes; `sizes` vec4s, 0: none), so one kernel serves every frame size. #}
{$ from "common.wgsl" import linear_index, decode, offset, zero_pad_lanes, sizes_decl $}
{$ if kind == "concat" $}
{$ for part in parts $}
@group(0) @binding({{ loop.index0 }}) var<storage, read> x{{ loop.index0 }}: array<{{ S }}>;
{$ endfor $}
@group(0) @binding({{ parts | length }}) var<storage, read_write> y: array<{{ S }}>;
{$ if sizes $}
{{ sizes_decl(parts | length + 1, sizes) }}
{$ endif $}
{$ elif kind == "gather" $}
@group(0) @binding(0) var<storage, read> x: array<{{ S }}>;
@group(0) @binding(1) var<storage, read> table: array<i32>;
@group(0) @binding(2) var<storage, read_write> y: array<{{ S }}>;
{$ if sizes $}
{{ sizes_decl(3, sizes) }}
{$ endif $}
{$ else $}
@group(0) @binding(0) var<storage, read> x: array<{{ S }}>;
@group(0) @binding(1) var<storage, read_write> y: array<{{ S }}>;
{$ if sizes $}
{{ sizes_decl(2, sizes) }}
{$ endif $}
{$ endif $}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
{$ if kind == "concat" $}
{{ linear_index(pitch, grid.total) }}
{{ decode(grid, "g") }}
{$ for k in range(out.rank) $}
  let o{{ k }} = g{{ k }}{$ if k == axis and lo $} + {{ lo }}u{$ endif $};
{$ endfor $}
  let dst = {{ offset("o", out.strides) }};
{$ if out.channels is not none $}
  if (o1 >= {{ out.channels }}u) { y[dst] = 0.0; return; }
{$ endif $}
{$ for part in parts $}
{$ set j = loop.index0 $}
{$ if not loop.last $}
  if (o{{ axis }} < {{ part.end }}u) {
{$ else $}
  {
{$ endif $}
    y[dst] = x{{ j }}[{$ for s in part.strides $}{$ if loop.index0 == axis $}(o{{ axis }} - {{ part.start }}u) * {{ s|u }} + {$ elif s != 0 $}o{{ loop.index0 }} * {{ s|u }} + {$ endif $}{$ endfor $}0u];
    return;
  }
{$ endfor $}
{$ else $}
{{ linear_index(pitch, out.total) }}
{{ decode(out, "o") }}
{{ zero_pad_lanes(out, "o", "y") }}
{$ if kind == "affine" $}
  let src = {{ base }}{$ for s in steps $}{$ if s != 0 $} + i32(o{{ loop.index0 }}) * ({{ s }}){$ endif $}{$ endfor $};
  y[i] = x[u32(src)];
{$ elif kind == "reshape" $}
  let l = {$ for s in lin $}o{{ loop.index0 }} * {{ s }}u + {$ endfor $}0u;
  let src = {$ for m in in_mod $}{$ if m != 1 $}((l / {{ in_div[loop.index0] }}u) % {{ m }}u) * {{ in_strides[loop.index0] }}u + {$ endif $}{$ endfor $}0u;
  y[i] = x[src];
{$ elif kind == "pad" $}
  var src = 0;
{$ for ax in axes $}
{$ set k = ax.k $}
{$ if ax.trivial $}
  src += (i32(o{{ k }}) + {{ ax.crop }}) * {{ ax.stride }};
{$ else $}
  var c{{ k }} = i32(o{{ k }}) - {{ ax.p }};
{$ if mode == "constant" $}
  if (c{{ k }} < 0 || c{{ k }} >= {{ ax.n }}) { y[i] = {{ value | f32 }}; return; }
{$ elif mode == "edge" $}
  c{{ k }} = clamp(c{{ k }}, 0, {{ ax.n - 1 }});
{$ elif mode == "reflect" $}
  c{{ k }} = abs(c{{ k }});
  if (c{{ k }} >= {{ ax.n }}) { c{{ k }} = {{ 2 * (ax.n - 1) }} - c{{ k }}; }
{$ elif mode == "wrap" $}
  c{{ k }} = ((c{{ k }} % {{ ax.n }}) + {{ ax.n }}) % {{ ax.n }};
{$ endif $}
  src += (c{{ k }} + {{ ax.crop }}) * {{ ax.stride }};
{$ endif $}
{$ endfor $}
  y[i] = x[u32(src)];
{$ elif kind == "tile" $}
  let src = {$ for m in in_mod $}(o{{ loop.index0 }} % {{ m }}u) * {{ in_strides[loop.index0] }}u + {$ endfor $}0u;
  y[i] = x[src];
{$ elif kind == "gather" $}
  let t = table[{$ for s in table_strides $}o{{ axis + loop.index0 }} * {{ s }}u + {$ endfor $}0u];
  let src = {$ for s in outer $}o{{ loop.index0 }} * {{ s }}u + {$ endfor $}u32(t) * {{ axis_stride }}u{$ for s in inner $} + o{{ axis + q + loop.index0 }} * {{ s }}u{$ endfor $};
  y[i] = x[src];
{$ elif kind == "d2s" $}
  let h = o2 / {{ block }}u;
  let bh = o2 % {{ block }}u;
  let w = o3 / {{ block }}u;
  let bw = o3 % {{ block }}u;
{$ if mode == "DCR" $}
  let ic = (bh * {{ block }}u + bw) * {{ channels_small }}u + o1;
{$ else $}
  let ic = o1 * {{ block * block }}u + bh * {{ block }}u + bw;
{$ endif $}
  y[i] = x[o0 * {{ in_strides[0]|u }} + ic * {{ in_strides[1]|u }} + h * {{ in_strides[2]|u }} + w * {{ in_strides[3]|u }}];
{$ elif kind == "s2d" $}
{$ if mode == "DCR" $}
  let bh = o1 / {{ block * channels_small }}u;
  let bw = (o1 / {{ channels_small }}u) % {{ block }}u;
  let ic = o1 % {{ channels_small }}u;
{$ else $}
  let ic = o1 / {{ block * block }}u;
  let bh = (o1 / {{ block }}u) % {{ block }}u;
  let bw = o1 % {{ block }}u;
{$ endif $}
  let h = o2 * {{ block }}u + bh;
  let w = o3 * {{ block }}u + bw;
  y[i] = x[o0 * {{ in_strides[0]|u }} + ic * {{ in_strides[1]|u }} + h * {{ in_strides[2]|u }} + w * {{ in_strides[3]|u }}];
{$ endif $}
{$ endif $}
}
