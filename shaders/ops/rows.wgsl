{# Row kernels (infer/ops/norm.py): one invocation per row (a combination of the kept axes),
   the row's `extent` elements walked at each tensor's own strides (`kept`, `red`: n, div and
   one stride per tensor name). kind:
     layernorm   (x - mean) / sqrt(var + eps) * scale[e] + bias[e]; optional mean / inv-std
                 outputs (LayerNormalization's 2nd and 3rd)
     softmax     exp(x - max) / sum
     logsoftmax  x - max - log(sum) #}
@group(0) @binding(0) var<storage, read> x: array<{{ S }}>;
{$ set ns = namespace(k=1) $}
{$ if kind == "layernorm" $}
@group(0) @binding(1) var<storage, read> params: array<f32>;
{$ set ns.k = 2 $}
{$ endif $}
{$ for name in names[1:] $}
@group(0) @binding({{ ns.k }}) var<storage, read_write> {{ name }}: array<{{ S }}>;
{$ set ns.k = ns.k + 1 $}
{$ endfor $}

{$ macro off(table, idx, name) $}{$ for r in table $}{$ if r[name] $}(({{ idx }} / {{ r.div }}u) % {{ r.n }}u) * {{ r[name] }}u + {$ endif $}{$ endfor $}0u{$ endmacro $}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.x + gid.y * {{ pitch }}u;
  if (r >= {{ rows }}u) { return; }
  let bx = {{ off(kept, "r", "x") }};
  let by = {{ off(kept, "r", "y") }};
{$ if kind == "layernorm" $}
  var sum = 0.0;
  for (var e = 0u; e < {{ extent }}u; e++) {
    sum += f32(x[bx + {{ off(red, "e", "x") }}]);
  }
  let mean = sum / {{ extent | f32 }};
  var sq = 0.0;
  for (var e = 0u; e < {{ extent }}u; e++) {
    let d = f32(x[bx + {{ off(red, "e", "x") }}]) - mean;
    sq += d * d;
  }
  let inv = inverseSqrt(sq / {{ extent | f32 }} + {{ eps | f32 }});
  for (var e = 0u; e < {{ extent }}u; e++) {
    let v = (f32(x[bx + {{ off(red, "e", "x") }}]) - mean) * inv;
    y[by + {{ off(red, "e", "y") }}] = {{ S }}(v * params[e] + params[{{ extent }}u + e]);
  }
{$ if "mean_out" in names $}
  mean_out[{{ off(kept, "r", "mean_out") }}] = {{ S }}(mean);
{$ endif $}
{$ if "inv_out" in names $}
  inv_out[{{ off(kept, "r", "inv_out") }}] = {{ S }}(inv);
{$ endif $}
{$ else $}
  var m = -3.4028234663852886e38;
  for (var e = 0u; e < {{ extent }}u; e++) {
    m = max(m, f32(x[bx + {{ off(red, "e", "x") }}]));
  }
  var sum = 0.0;
  for (var e = 0u; e < {{ extent }}u; e++) {
    sum += exp(f32(x[bx + {{ off(red, "e", "x") }}]) - m);
  }
{$ if kind == "softmax" $}
  let inv = 1.0 / sum;
  for (var e = 0u; e < {{ extent }}u; e++) {
    y[by + {{ off(red, "e", "y") }}] = {{ S }}(exp(f32(x[bx + {{ off(red, "e", "x") }}]) - m) * inv);
  }
{$ else $}
  let lse = m + log(sum);
  for (var e = 0u; e < {{ extent }}u; e++) {
    y[by + {{ off(red, "e", "y") }}] = {{ S }}(f32(x[bx + {{ off(red, "e", "x") }}]) - lse);
  }
{$ endif $}
{$ endif $}
}
