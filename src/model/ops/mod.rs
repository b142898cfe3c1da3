//! soundsentry's own tract ops and the load-time graph rewrites that put them in place: fused
//! attention, fused layer norms, scaled casts of quantised products, grouped convolutions
//! split, shape arithmetic folded. Written in tract's own style, to go upstream.
//!
//! `attention/` is the op (its kernels cut by role and CPU); `fuse.rs` finds attention
//! subgraphs and replaces them; `norm.rs`, `dequant.rs`, `groups.rs` and `consts.rs` are one
//! rewrite each, with their op where they have one.

pub(crate) mod attention;
mod consts;
mod dequant;
mod fuse;
mod groups;
mod norm;

pub use consts::fold_shape_arithmetic;
pub use dequant::fuse_scaled_casts;
pub use fuse::fuse_attention;
pub(crate) use groups::split_grouped_convs;
pub use norm::fuse_layer_norms;

/// How a quantised model's attention products run (`model.attention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Attention {
    /// A model with 8-bit integer products runs its attention products in bfloat16 where the
    /// CPU has AVX-512 BF16; every other model, or CPU, in f32.
    #[default]
    Auto,
    /// Always f32, as the graph computes it.
    F32,
}

impl std::str::FromStr for Attention {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "f32" => Ok(Self::F32),
            other => Err(format!(
                "unknown attention {other:?}: use \"auto\" or \"f32\""
            )),
        }
    }
}

/// The bits of the first output of `model`, optimised and run on `input` (the load-time
/// rewrites' tests compare them with the unrewritten graph's).
#[cfg(test)]
pub(crate) fn optimised_output_bits(
    model: tract_onnx::prelude::TypedModel,
    input: tract_onnx::prelude::TValue,
) -> tract_onnx::prelude::TractResult<Vec<u32>> {
    use tract_onnx::prelude::*;
    let out = model.into_optimized()?.into_runnable()?.run(tvec!(input))?;
    Ok(out[0]
        .try_as_plain_ram()?
        .as_slice::<f32>()?
        .iter()
        .map(|f| f.to_bits())
        .collect())
}
