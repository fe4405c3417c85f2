{# ScatterElements with GPU indices (infer/ops/scatter_elements.py): one invocation per output
   element. It starts as data and walks the m index entries of its row along the axis in
   order, folding in the update of every entry that names its coordinate (negative indices
   count from the end): the last one wins for `none`, the others combine them all. Indices
   are stored as floats. #}
{$ from "common.wgsl" import linear_index, decode, offset, zero_pad_lanes, fold $}
@group(0) @binding(0) var<storage, read> x: array<{{ S }}>;
@group(0) @binding(1) var<storage, read> ind: array<{{ S }}>;
@group(0) @binding(2) var<storage, read> upd: array<{{ S }}>;
@group(0) @binding(3) var<storage, read_write> y: array<{{ S }}>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
{{ linear_index(pitch, out.total) }}
{{ decode(out, "o") }}
{{ zero_pad_lanes(out, "o", "y") }}
  var v = f32(x[{{ offset("o", x_strides) }}]);
  let here = i32(o{{ axis }});
  if ({$ for k, d in limits $}o{{ k }} < {{ d }}u && {$ endfor $}true) {
    let ib = {{ offset("o", i_strides) }};
    let ub = {{ offset("o", u_strides) }};
    for (var j = 0u; j < {{ m }}u; j++) {
      var t = i32(round(f32(ind[ib + j * {{ i_step }}u])));
      if (t < 0) { t = t + {{ n }}; }
      if (t != here) { continue; }
      let u = f32(upd[ub + j * {{ u_step }}u]);
      {{ fold(reduction) }}
    }
  }
  y[i] = {{ S }}(v);
}
