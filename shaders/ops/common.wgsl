{# Macros shared by the generic (one invocation per physical element) kernels. #}
{$ macro linear_index(pitch, total) $}
  let i = gid.x + gid.y * {{ pitch|u }};
  if (i >= {{ total|u }}) { return; }
{$ endmacro $}

{# Logical coordinates of physical element i: let <p>k = (i / div[k]) % mod[k]. #}
{$ macro decode(t, p) $}
{$ for k in range(t.rank) $}
  let {{ p }}{{ k }} = (i / {{ t.div[k]|u }}) % {{ t.mod[k]|u }};
{$ endfor $}
{$ endmacro $}

{# Physical offset of coordinates <p>k under the given strides (zero strides dropped). #}
{$ macro offset(p, strides) $}({$ for s in strides $}{$ if s != 0 $}{{ p }}{{ loop.index0 }} * {{ s|u }} + {$ endif $}{$ endfor $}0u){$ endmacro $}

{# Padding lanes of the channel axis are written as zero and skipped. #}
{$ macro zero_pad_lanes(t, p, out) $}
{$ if t.channels is not none $}
  if ({{ p }}1 >= {{ t.channels }}u) { {{ out }}[i] = 0.0; return; }
{$ endif $}
{$ endmacro $}

{# The uniform block of values that change with the input's size (infer/ops/common.py
   Sizes): `n` vec4s at binding `b`, none when n is 0. #}
{$ macro sizes_decl(b, n) $}
{$ if n $}
@group(0) @binding({{ b }}) var<uniform> sz: array<vec4<u32>, {{ n }}>;
{$ endif $}
{$ endmacro $}

{# folds an update u into the value v by a scatter's reduction (ScatterND, ScatterElements):
   `none` keeps the last update #}
{$ macro fold(reduction) $}
{$ if reduction == "add" $}v = v + u;{$ elif reduction == "mul" $}v = v * u;{$ elif reduction == "max" $}v = max(v, u);{$ elif reduction == "min" $}v = min(v, u);{$ else $}v = u;{$ endif $}
{$ endmacro $}
