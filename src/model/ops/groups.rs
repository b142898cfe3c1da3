//! Load-time rewrite: a large grouped int8 convolution becomes one convolution per group, so one group's im2col is in memory at a time.
//!
//! tract runs an integer convolution as an explicit im2col followed by an integer product, and
//! for a grouped convolution it builds the im2col of every group before the first product.
//! BEATs' positional convolution (768 channels in 16 groups, a kernel of 128, 496 tokens)
//! fills 49 MB that way on every window, more than half its int8 weights again. Split, each
//! group's convolution reads its slice of the channels, builds its own im2col (3 MB), runs its
//! product and frees the im2col before the next group starts; the outputs are concatenated
//! along the channels. Every group computes the same sums with the same values as before, so
//! the outputs keep every bit.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::{Slice, TypedConcat};
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PoolSpec};

/// The im2col size (bytes, every group together) from which a grouped int8 convolution is
/// split: below it the im2col is small next to the weights and one product per group gains
/// nothing.
pub const SPLIT_FROM_BYTES: usize = 8 << 20;

/// Splits every grouped int8 convolution (not depthwise, kernel in ONNX's OIHW layout, input
/// shape known) whose im2col would take `SPLIT_FROM_BYTES` or more into one convolution per
/// group; returns how many were split.
pub fn split_grouped_convs(model: &mut TypedModel) -> TractResult<usize> {
    let mut patches = vec![];
    for node in model.nodes() {
        let Some(conv) = node.op_as::<Conv>() else {
            continue;
        };
        let Some(shape) = model.outlet_fact(node.inputs[0])?.shape.as_concrete() else {
            continue;
        };
        if im2col_bytes(conv, shape)? >= SPLIT_FROM_BYTES {
            patches.push(split(model, node, conv, shape)?);
        }
    }
    let split = patches.len();
    for patch in patches {
        patch.apply(model)?;
    }
    Ok(split)
}

/// The bytes of the im2col tract would build for `conv` on an input of `shape`, or 0 for a
/// convolution this rewrite leaves alone.
fn im2col_bytes(conv: &Conv, shape: &[usize]) -> TractResult<usize> {
    let depthwise = conv.group == conv.input_channels() && conv.group == conv.output_channels();
    if conv.q_params.is_none()
        || conv.group < 2
        || depthwise
        || conv.kernel_fmt != KernelFormat::OIHW
    {
        return Ok(0);
    }
    let out = conv.pool_spec.output_shape(shape)?;
    let positions: usize = out.hw_dims().iter().product::<usize>() * out.n().copied().unwrap_or(1);
    let depth = conv.input_channels() * conv.pool_spec.kernel_shape.iter().product::<usize>();
    Ok(depth * positions)
}

/// The patch that replaces `node` by one convolution per group and their concatenation.
fn split(
    model: &TypedModel,
    node: &TypedNode,
    conv: &Conv,
    shape: &[usize],
) -> TractResult<TypedModelPatch> {
    let mut patch = TypedModelPatch::new(format!("split groups of {}", node.name));
    let taps = patch.taps(model, &node.inputs)?;
    let inputs = conv.input_channels() / conv.group;
    let outputs = conv.output_channels() / conv.group;
    // Input and output have one layout, so their channels are on the same axis.
    let c_axis = conv.pool_spec.data_format.shape(shape)?.c_axis();
    let one_group = Conv {
        pool_spec: PoolSpec {
            input_channels: inputs,
            output_channels: outputs,
            ..conv.pool_spec.clone()
        },
        kernel_fmt: KernelFormat::OIHW,
        group: 1,
        q_params: conv.q_params,
    };
    let mut parts = tvec![];
    for g in 0..conv.group {
        let mut wires = tvec![];
        // Inputs: data, kernel (O, I/group, …), bias, then the zero points and scales of the
        // data, the kernel and the output; a vector one is per channel and is sliced too.
        for (slot, &tap) in taps.iter().enumerate() {
            let fact = patch.outlet_fact(tap)?;
            let (axis, len) = match slot {
                0 => (c_axis, inputs),
                1 => (0, outputs),
                3 | 4 if fact.rank() == 1 => (0, inputs),
                2 | 5..=8 if fact.rank() == 1 => (0, outputs),
                _ => {
                    wires.push(tap);
                    continue;
                }
            };
            let name = format!("{}.group{g}.input{slot}", node.name);
            let slice = Slice::new(axis, g * len, (g + 1) * len);
            wires.push(patch.wire_node(name, slice, &[tap])?[0]);
        }
        let name = format!("{}.group{g}", node.name);
        parts.push(patch.wire_node(name, one_group.clone(), &wires)?[0]);
    }
    let name = format!("{}.groups", node.name);
    let out = patch.wire_node(name, TypedConcat::new(c_axis), &parts)?[0];
    patch.shunt_outside(model, node.id.into(), out)?;
    Ok(patch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::PaddingSpec;
    use tract_onnx::tract_core::ops::nn::DataFormat;

    /// A grouped int8 convolution (i8 data and kernel, per-channel kernel scales, an i32
    /// output as ONNX's ConvInteger gives) on a 1-D input, as BEATs' positional convolution.
    fn grouped_conv(group: usize, channels: usize, len: usize, kernel: usize) -> TypedModel {
        let mut model = TypedModel::default();
        let x = model
            .add_source("x", i8::fact([1, channels, len]))
            .expect("source");
        let per_group = channels / group;
        let k: Vec<i8> = (0..channels * per_group * kernel)
            .map(|i| ((i * 37 + 11) % 255) as i8)
            .collect();
        let bias: Vec<i32> = (0..channels as i32).map(|c| c * 7 - 100).collect();
        let k_scale: Vec<f32> = (0..channels).map(|c| 1.0 + c as f32 / 8.0).collect();
        let mut konst = |name: &str, t: Tensor| model.add_const(name, t).expect("const");
        let wires = [
            x,
            konst(
                "kernel",
                Tensor::from_shape(&[channels, per_group, kernel], &k).expect("kernel"),
            ),
            konst("bias", tensor1(&bias)),
            konst("x0", tensor0(3i32)),
            konst("x_scale", tensor0(0.5f32)),
            konst("k0", tensor0(0i32)),
            konst("k_scale", tensor1(&k_scale)),
            konst("y0", tensor0(0i32)),
            konst("y_scale", tensor0(1f32)),
        ];
        let conv = Conv {
            pool_spec: PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: tvec![kernel],
                padding: PaddingSpec::Explicit(tvec![kernel / 2], tvec![kernel / 2]),
                dilations: None,
                strides: None,
                input_channels: channels,
                output_channels: channels,
            },
            kernel_fmt: KernelFormat::OIHW,
            group,
            q_params: Some(i32::datum_type()),
        };
        let out = model.wire_node("conv", conv, &wires).expect("conv");
        model.select_output_outlets(&out).expect("output");
        model
    }

    fn run(model: TypedModel, x: &Tensor) -> Tensor {
        let plan = model
            .into_optimized()
            .expect("optimise")
            .into_runnable()
            .expect("plan");
        let out = plan.run(tvec![x.clone().into_tvalue()]).expect("run");
        out[0].clone().into_tensor()
    }

    fn input(channels: usize, len: usize) -> Tensor {
        let x: Vec<i8> = (0..channels * len)
            .map(|i| ((i * 101 + 7) % 256) as u8 as i8)
            .collect();
        Tensor::from_shape(&[1, channels, len], &x).expect("input")
    }

    #[test]
    fn a_large_grouped_conv_is_split_per_group_and_keeps_every_value() {
        // 128 channels in 4 groups, kernel 128, 600 positions: an im2col of 128 · 128 · 601
        // bytes, just over the threshold.
        let (group, channels, len, kernel) = (4, 128, 600, 128);
        assert!(channels * kernel * (len + 1) >= SPLIT_FROM_BYTES);
        let plain = grouped_conv(group, channels, len, kernel);
        let mut split = plain.clone();
        assert_eq!(split_grouped_convs(&mut split).expect("rewrite"), 1);
        let split = split.into_decluttered().expect("declutter");
        let per_group = split
            .nodes()
            .iter()
            .filter_map(|n| n.op_as::<Conv>())
            .map(|c| (c.group, c.input_channels(), c.output_channels()))
            .collect::<Vec<_>>();
        assert_eq!(per_group, vec![(1, 32, 32); group]);
        let x = input(channels, len);
        let (a, b) = (run(plain, &x), run(split, &x));
        assert_eq!(a.shape(), b.shape());
        let (a, b) = (
            a.to_plain_array_view::<i32>().expect("i32"),
            b.to_plain_array_view::<i32>().expect("i32"),
        );
        let differ = a.iter().zip(b.iter()).filter(|(x, y)| x != y).count();
        assert_eq!(differ, 0, "{differ} of {} values differ", a.len());
    }

    #[test]
    fn a_small_grouped_conv_is_left_alone() {
        let mut model = grouped_conv(4, 64, 100, 16);
        assert_eq!(split_grouped_convs(&mut model).expect("rewrite"), 0);
    }
}
