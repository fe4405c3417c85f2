{# activate(v, c4): the activation fused into a kernel's store, on 4 channels c4*4..c4*4+3.
   A template including this declares `act_slope` (array<vec4<f32>>) when act.kind is PRelu. #}
{$ if act.kind == "Gelu" $}
fn erf4(x: vec4<f32>) -> vec4<f32> {
  // Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7)
  let s = sign(x);
  let a = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
  return s * y;
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
  return max(v, vec4<f32>(0.0)) + log(1.0 + exp(-abs(v)));
{$ endif $}
}
