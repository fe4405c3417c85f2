{# Zero the channel padding lanes of an image-layout tensor (channels innermost, padded from
   c to p): for kernels that write only its logical elements. #}
{$ from "common.wgsl" import linear_index $}
@group(0) @binding(0) var<storage, read_write> y: array<{{ S }}>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
{{ linear_index(pitch, total) }}
  y[(i / {{ p - c }}u) * {{ p }}u + {{ c }}u + i % {{ p - c }}u] = {{ S }}(0.0);
}
