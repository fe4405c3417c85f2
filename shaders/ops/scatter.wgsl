{# ScatterND with constant indices (infer/ops/indexing.py): one invocation per output element.
   The data axes 0 .. q-1 name a slot; `table` holds each slot's range of update rows
   (table[slot] .. table[slot + 1]) and, from `rows_at`, each row's base offset in `upd`. The
   element starts as data and folds in the slot's rows in order: the last one wins for
   `none`, the others combine every row (duplicate indices included). #}
{$ from "common.wgsl" import linear_index, decode, offset, zero_pad_lanes, fold $}
@group(0) @binding(0) var<storage, read> x: array<{{ S }}>;
@group(0) @binding(1) var<storage, read> upd: array<{{ S }}>;
@group(0) @binding(2) var<storage, read> table: array<i32>;
@group(0) @binding(3) var<storage, read_write> y: array<{{ S }}>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
{{ linear_index(pitch, out.total) }}
{{ decode(out, "o") }}
{{ zero_pad_lanes(out, "o", "y") }}
  var v = f32(x[{{ offset("o", x_strides) }}]);
  let slot = {$ for s in slot_strides $}o{{ loop.index0 }} * {{ s }}u + {$ endfor $}0u;
  let inner = {$ for s in inner_strides $}{$ if s != 0 $}o{{ q + loop.index0 }} * {{ s }}u + {$ endif $}{$ endfor $}0u;
  for (var t = table[slot]; t < table[slot + 1u]; t++) {
    let u = f32(upd[u32(table[{{ rows_at }} + t]) + inner]);
    {{ fold(reduction) }}
  }
  y[i] = {{ S }}(v);
}
