{# binop(x, z): the op of binary_same.wgsl / binary.wgsl on vec4s (scalars are splatted).
   Comparisons and logic give 0.0 / 1.0, which is how bool tensors are stored on the GPU. #}
fn binop(x: vec4<f32>, z: vec4<f32>) -> vec4<f32> {
{$ if op == "Add" $}
  return x + z;
{$ elif op == "Sub" $}
  return x - z;
{$ elif op == "Mul" $}
  return x * z;
{$ elif op == "Div" $}
  return x / z;
{$ elif op == "PRelu" $}
  return select(x * z, x, x >= vec4<f32>(0.0));
{$ elif op == "Max" $}
  return max(x, z);
{$ elif op == "Min" $}
  return min(x, z);
{$ elif op == "Mean" $}
  return (x + z) * 0.5;
{$ elif op == "Pow" $}
  // WGSL's pow is undefined for x < 0: odd and even integer exponents done by hand
  let p = pow(abs(x), z);
  let zi = round(z);
  let odd = abs(zi - 2.0 * floor(zi * 0.5)) > vec4<f32>(0.5);
  let nan = (z - z) / (z - z);
  let neg = select(nan, select(p, -p, odd), zi == z);
  let r = select(neg, p, x >= vec4<f32>(0.0));
  return select(select(r, x * x, z == vec4<f32>(2.0)), vec4<f32>(1.0), z == vec4<f32>(0.0));
{$ elif op == "Mod" $}
  // C's fmod (x - z * trunc(x / z)), but x itself for an infinite z; fmod=0 (Python's %):
  // a nonzero result takes the sign of z
  let inf_z = abs(z) > vec4<f32>(3.4028234663852886e38);
  var r = select(x - z * trunc(x / z), x, inf_z & (abs(x) <= vec4<f32>(3.4028234663852886e38)));
{$ if not fmod $}
  r = select(r, r + z, (r != vec4<f32>(0.0)) & ((r < vec4<f32>(0.0)) != (z < vec4<f32>(0.0))));
{$ endif $}
  return r;
{$ elif op == "Equal" $}
  return select(vec4<f32>(0.0), vec4<f32>(1.0), x == z);
{$ elif op == "Less" $}
  return select(vec4<f32>(0.0), vec4<f32>(1.0), x < z);
{$ elif op == "Greater" $}
  return select(vec4<f32>(0.0), vec4<f32>(1.0), x > z);
{$ elif op == "LessOrEqual" $}
  return select(vec4<f32>(0.0), vec4<f32>(1.0), x <= z);
{$ elif op == "GreaterOrEqual" $}
  return select(vec4<f32>(0.0), vec4<f32>(1.0), x >= z);
{$ elif op == "And" $}
  return x * z;
{$ elif op == "Or" $}
  return max(x, z);
{$ elif op == "Xor" $}
  return select(vec4<f32>(0.0), vec4<f32>(1.0), x != z);
{$ endif $}
}
