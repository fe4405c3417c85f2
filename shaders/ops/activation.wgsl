{# activate(v, c4): the activation fused into a kernel's store, on 4 channels c4*4..c4*4+3.
   A template including this declares `act_slope` (array<vec4<f32>>) when act.kind is PRelu. #}
{$ if act.kind in ("Gelu", "Erf") $}
fn erf4(x: vec4<f32>) -> vec4<f32> {
  // Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7)
  let s = sign(x);
  let a = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
  return s * y;
}
{$ endif $}
{$ if act.kind in ("Softplus", "Mish") $}
fn softplus4(v: vec4<f32>) -> vec4<f32> {
  // max(v, 0) + log(1 + exp(-|v|)), with log1p's series where 1 + t rounds t away
  let t = exp(-abs(v));
  let l = select(log(1.0 + t), t * (1.0 - 0.5 * t), t < vec4<f32>(1e-3));
  return max(v, vec4<f32>(0.0)) + l;
}
{$ endif $}
fn activate(v: vec4<f32>, c4: u32) -> vec4<f32> {
{$ if act.kind == "none" $}
  return v;
{$ elif act.kind == "Relu" $}
  return max(v, vec4<f32>(0.0));
{$ elif act.kind == "LeakyRelu" $}
  return select(v * {{ act.alpha|f32 }}, v, v >= vec4<f32>(0.0));
{$ elif act.kind == "PRelu" $}
  return select(v * act_slope[c4], v, v >= vec4<f32>(0.0));
{$ elif act.kind == "Clip" $}
  return clamp(v, vec4<f32>({{ act.lo|f32 }}), vec4<f32>({{ act.hi|f32 }}));
{$ elif act.kind == "Sigmoid" $}
  return 1.0 / (1.0 + exp(-v));
{$ elif act.kind == "Tanh" $}
  let e = exp(-2.0 * abs(v));
  return sign(v) * (1.0 - e) / (1.0 + e);
{$ elif act.kind == "HardSigmoid" $}
  return clamp(v * {{ act.alpha|f32 }} + {{ act.beta|f32 }}, vec4<f32>(0.0), vec4<f32>(1.0));
{$ elif act.kind == "HardSwish" $}
  return v * clamp(v / 6.0 + 0.5, vec4<f32>(0.0), vec4<f32>(1.0));
{$ elif act.kind == "Elu" $}
  return select({{ act.alpha|f32 }} * (exp(min(v, vec4<f32>(0.0))) - 1.0), v, v > vec4<f32>(0.0));
{$ elif act.kind == "Gelu" $}
{$ if act.approximate == "tanh" $}
  let u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
  let e = exp(-2.0 * abs(u));
  return 0.5 * v * (1.0 + sign(u) * (1.0 - e) / (1.0 + e));
{$ else $}
  return 0.5 * v * (1.0 + erf4(v * 0.7071067811865476));
{$ endif $}
{$ elif act.kind == "Softplus" $}
  return softplus4(v);
{$ elif act.kind == "Softsign" $}
  return v / (1.0 + abs(v));
{$ elif act.kind == "Mish" $}
  let sp = softplus4(v);
  let e = exp(-2.0 * sp);
  // tanh(sp) for sp >= 0; its series below 1e-3, where 1 - e cancels
  return v * select((1.0 - e) / (1.0 + e), sp * (1.0 - sp * sp / 3.0), sp < vec4<f32>(1e-3));
{$ elif act.kind == "Selu" $}
  return {{ act.gamma|f32 }} * select({{ act.alpha|f32 }} * (exp(min(v, vec4<f32>(0.0))) - 1.0), v, v > vec4<f32>(0.0));
{$ elif act.kind == "Celu" $}
  return max(v, vec4<f32>(0.0)) + min(vec4<f32>(0.0), {{ act.alpha|f32 }} * (exp(min(v, vec4<f32>(0.0)) / {{ act.alpha|f32 }}) - 1.0));
{$ elif act.kind == "ThresholdedRelu" $}
  return select(vec4<f32>(0.0), v, v > vec4<f32>({{ act.alpha|f32 }}));
{$ elif act.kind == "SiLU" $}
  return v / (1.0 + exp(-v));
{$ elif act.kind == "Sqrt" $}
  return sqrt(v);
{$ elif act.kind == "Reciprocal" $}
  return 1.0 / v;
{$ elif act.kind == "Exp" $}
  return exp(v);
{$ elif act.kind == "Log" $}
  return log(v);
{$ elif act.kind == "Neg" $}
  return -v;
{$ elif act.kind == "Abs" $}
  return abs(v);
{$ elif act.kind == "Erf" $}
  return erf4(v);
{$ elif act.kind == "Floor" $}
  return floor(v);
{$ elif act.kind == "Ceil" $}
  return ceil(v);
{$ elif act.kind == "Round" $}
  return round(v);
{$ elif act.kind == "Sign" $}
  return sign(v);
{$ elif act.kind == "Sin" $}
  return sin(v);
{$ elif act.kind == "Cos" $}
  return cos(v);
{$ elif act.kind == "Not" $}
  return 1.0 - v;
{$ else $}
  unknown activation {{ act.kind }}
{$ endif $}
}
