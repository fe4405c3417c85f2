{# ArgMin / ArgMax (infer/ops/argreduce.py): one invocation per row (every coordinate but the
   axis) walks the axis once, keeping the best value and its index. `better` is the test
   under which a later element takes over: strict for the first index among equals, with
   equality for select_last_index. The index is stored as a float. #}
@group(0) @binding(0) var<storage, read> x: array<{{ S }}>;
@group(0) @binding(1) var<storage, read_write> y: array<{{ S }}>;

{$ macro off(table, idx, name) $}{$ for r in table $}{$ if r[name] $}(({{ idx }} / {{ r.div }}u) % {{ r.n }}u) * {{ r[name] }}u + {$ endif $}{$ endfor $}0u{$ endmacro $}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.x + gid.y * {{ pitch }}u;
  if (r >= {{ rows }}u) { return; }
  let bx = {{ off(kept, "r", "x") }};
  var bv = f32(x[bx]);
  var bi = 0u;
  for (var e = 1u; e < {{ n }}u; e++) {
    let v = f32(x[bx + e * {{ x_step }}u]);
    if (v {{ better }} bv) {
      bv = v;
      bi = e;
    }
  }
  y[{{ off(kept, "r", "y") }}] = {{ S }}(f32(bi));
}
