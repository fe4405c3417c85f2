{# TopK (infer/ops/topk.py): one invocation per row (every coordinate but the axis). The k
   picks are made in order, each the best element that comes after the previous pick in the
   ordering (value first, then the lower index: onnx's and onnxruntime's tie rule), so the row
   is read k times and nothing is held but the last pick. Indices are stored as floats. #}
@group(0) @binding(0) var<storage, read> x: array<{{ S }}>;
{$ for name in outs $}
@group(0) @binding({{ loop.index }}) var<storage, read_write> {{ name }}: array<{{ S }}>;
{$ endfor $}

{$ macro off(table, idx, name) $}{$ for r in table $}{$ if r[name] $}(({{ idx }} / {{ r.div }}u) % {{ r.n }}u) * {{ r[name] }}u + {$ endif $}{$ endfor $}0u{$ endmacro $}

// a comes before b: {{ "larger" if largest else "smaller" }} value, then lower index
fn precedes(a: f32, ia: i32, b: f32, ib: i32) -> bool {
{$ if largest $}
  return a > b || (a == b && ia < ib);
{$ else $}
  return a < b || (a == b && ia < ib);
{$ endif $}
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.x + gid.y * {{ pitch }}u;
  if (r >= {{ rows }}u) { return; }
  let bx = {{ off(kept, "r", "x") }};
{$ for name in outs $}
  let b_{{ name }} = {{ off(kept, "r", name) }};
{$ endfor $}
  var pv = 0.0;
  var pi = -1;
  for (var j = 0u; j < {{ k }}u; j++) {
    var bv = 0.0;
    var bi = -1;
    for (var e = 0; e < {{ n }}; e++) {
      let v = f32(x[bx + u32(e) * {{ x_step }}u]);
      if (pi >= 0 && !precedes(pv, pi, v, e)) { continue; }
      if (bi < 0 || precedes(v, e, bv, bi)) {
        bv = v;
        bi = e;
      }
    }
{$ if "values" in outs $}
    values[b_values + j * {{ values_step }}u] = {{ S }}(bv);
{$ endif $}
{$ if "indices" in outs $}
    indices[b_indices + j * {{ indices_step }}u] = {{ S }}(f32(bi));
{$ endif $}
    pv = bv;
    pi = bi;
  }
}
