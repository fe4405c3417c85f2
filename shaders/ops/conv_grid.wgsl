{# The entry point and the grid position shared by the grouped conv kernels (conv2d.wgsl,
   conv_winograd.wgsl; infer/ops/conv_site.py grouped_dispatches). With `sg` (weights shared
   through subgroup broadcasts) the workgroup is 1-D, as naga defines subgroup lanes only so,
   and the grid flat: `cols` invocations a row of this band, the rows one after another;
   `live` is false past the band's `band_tiles` rows, which store nothing (both in params). Each macro's
   output ends without a newline: call it on a line of its own. #}
{$ macro entry(sg, wgx, wgy) $}
{$ if sg $}
@compute @workgroup_size({{ wgx }}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
{$- else $}
@compute @workgroup_size({{ wgx }}, {{ wgy }}, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
{$- endif $}
{$ endmacro $}

{# let <row> = this invocation's output row (or tile row), <col> = its first column #}
{$ macro position(sg, row, col, step) $}
{$ if sg $}
  let band_row = gid.x / params.cols;
  let live = band_row < params.band_tiles;
  let {{ row }} = band_row + params.row0;
  let {{ col }} = (gid.x - band_row * params.cols) * {{ step }}u;
{$- else $}
  let {{ row }} = gid.y + params.row0;
  let {{ col }} = gid.x * {{ step }}u;
{$- endif $}
{$ endmacro $}
