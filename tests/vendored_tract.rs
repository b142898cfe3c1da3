//! The vendored tract-linalg and tract-core patches against plain references: integer and
//! f32 matrix kernels (exact sums, k order, wide tiles, stores, two threads), the int8 packing
//! writer and the i32 Sum (vendor/README.md lists the patches; the constant folding is tested
//! with the models, in `model_parity`).

/// The vendored tract-core's i32 Sum (vendor/README.md) against naive sums, for every axis
/// and pairs of axes of a 3-D tensor, including wrapping on overflow.
#[test]
fn patched_i32_sum_matches_naive_sums() {
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::ops::nn::Reducer;
    let (a, b, c) = (3usize, 5usize, 7usize);
    let mut vals: Vec<i32> = (0..a * b * c)
        .map(|i| (i as i32 * 7919) % 1000 - 500)
        .collect();
    vals[4] = i32::MAX; // the sum over its lane wraps, as i32 additions do
    let t = Tensor::from_shape(&[a, b, c], &vals).expect("tensor");
    let at = |i: usize, j: usize, k: usize| vals[(i * b + j) * c + k];
    for axes in [vec![0], vec![1], vec![2], vec![0, 2], vec![1, 2]] {
        let got = Reducer::Sum.reduce(&axes, &t).expect("sum");
        let shape: Vec<usize> = [a, b, c]
            .iter()
            .enumerate()
            .map(|(ax, &d)| if axes.contains(&ax) { 1 } else { d })
            .collect();
        assert_eq!(got.shape(), shape.as_slice(), "axes {axes:?}");
        let got = got.to_plain_array_view::<i32>().expect("i32 sums");
        let got: Vec<i32> = got.iter().copied().collect();
        let mut want = vec![0i32; got.len()];
        for i in 0..a {
            for j in 0..b {
                for k in 0..c {
                    let o = [i, j, k];
                    let idx = (0..3).fold(0, |acc, ax| {
                        let pos = if axes.contains(&ax) { 0 } else { o[ax] };
                        acc * shape[ax] + pos
                    });
                    want[idx] = want[idx].wrapping_add(at(i, j, k));
                }
            }
        }
        assert_eq!(got, want, "axes {axes:?}");
    }
}

/// Integer matrix products as dynamically quantised models run them (i8 or u8 activations
/// with a zero point, i8 weights with a zero point, i32 results) against naive sums: exact,
/// for shapes that leave partial tiles and a depth that is not a multiple of 4. This is the
/// vendored tract-linalg's AVX-512 VNNI kernel on machines that pick it (vendor/README.md).
#[test]
fn integer_products_are_exact() {
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::ops::einsum::EinSum;

    fn check<A: Datum + Copy + Into<i32>>(
        m: usize,
        k: usize,
        n: usize,
        a0: A,
        b0: i8,
        at: impl Fn(usize) -> A,
    ) {
        let av: Vec<A> = (0..m * k).map(&at).collect();
        // Weights cover the whole i8 range, including -128 and 127.
        let bv: Vec<i8> = (0..k * n)
            .map(|i| ((i * 7919 + 13) % 256) as u8 as i8)
            .collect();
        let mut model = TypedModel::default();
        let a = model.add_source("a", A::fact([m, k])).expect("source");
        let mut inputs = vec![a];
        let b = Tensor::from_shape(&[k, n], &bv).expect("b");
        for (name, t) in [
            ("b", b),
            ("bias", tensor0(0i32)),
            ("a0", tensor0(a0)),
            ("a_scale", tensor0(1f32)),
            ("b0", tensor0(b0)),
            ("b_scale", tensor0(1f32)),
            ("c0", tensor0(0i32)),
            ("c_scale", tensor0(1f32)),
        ] {
            inputs.push(model.add_const(name, t).expect("const"));
        }
        let axes = "mk,kn,,,,,,,->mn".parse().expect("axes");
        let op = EinSum::newq(axes, i32::datum_type(), i32::datum_type());
        let c = model.wire_node("mm", op, &inputs).expect("wire");
        model.select_output_outlets(&c).expect("outputs");
        let plan = model
            .into_optimized()
            .expect("optimise")
            .into_runnable()
            .expect("plan");
        // On one thread and on two (the vendored tract-linalg packs the activations in parts).
        for threads in [1, 2] {
            let input = Tensor::from_shape(&[m, k], &av).expect("a");
            let out = on_threads(threads, || plan.run(tvec!(input.into_tvalue()))).expect("run");
            let got = out[0].to_plain_array_view::<i32>().expect("i32 output");
            for i in 0..m {
                for j in 0..n {
                    let want: i32 = (0..k)
                        .map(|p| {
                            (av[i * k + p].into() - a0.into()) * (bv[p * n + j] as i32 - b0 as i32)
                        })
                        .sum();
                    assert_eq!(
                        got[[i, j]],
                        want,
                        "{m}x{k}x{n} at ({i}, {j}), {threads} threads"
                    );
                }
            }
        }
    }

    let shapes = [
        (1, 1, 1),
        (16, 4, 16),
        (37, 67, 45),
        (50, 768, 33),
        (300, 771, 20),
        // m < n: below 64 rows tract swaps the operands (n becomes the kernel's rows); from
        // 64 rows on, the vendored tract-core keeps them (C stored a whole row at a time).
        (40, 24, 100),
        (70, 96, 200),
        // k from 1,536 on: the vendored tract-linalg runs the product in passes over k-slices.
        (70, 3001, 40),
        (33, 1536, 70),
    ];
    for (m, k, n) in shapes {
        // u8 activations as onnxruntime's DynamicQuantizeLinear makes them, extremes included.
        check(m, k, n, 131u8, -3, |i| ((i * 31 + 7) % 256) as u8);
        check(m, k, n, 0u8, 0, |i| if i % 3 == 0 { 255 } else { 0 });
        // i8 activations, extremes included.
        check(m, k, n, -5i8, 7, |i| ((i * 57 + 3) % 256) as u8 as i8);
        check(m, k, n, 0i8, 0, |i| if i % 2 == 0 { -128 } else { 127 });
    }
}

/// f32 products with a long k (run by the vendored tract-linalg in passes over k-slices, each
/// starting from the partial sums the one before stored) give the bits of one fused
/// multiply-add after another along k, on one thread and two, border tiles included.
#[test]
fn long_f32_products_add_k_in_order() {
    use tract_onnx::prelude::*;
    // tract-linalg splits k except on AMD CPUs (where whole products measured faster): on any
    // x86_64 machine this test also runs once with the Intel cohort forced, in a child process,
    // so the k-slices are checked whatever the vendor.
    if cfg!(target_arch = "x86_64") && std::env::var_os("TRACT_X86_KIND").is_none() {
        let name = "vendored_tract::long_f32_products_add_k_in_order";
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", name, "--test-threads=1"])
            .env("TRACT_X86_KIND", "intel")
            .output()
            .expect("the test binary runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "with TRACT_X86_KIND=intel:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (m, k, n) in [
        (70, 3001, 50),
        (37, 1536, 29),
        (16, 2000, 12),
        (40, 700, 30),
    ] {
        let (av, bv) = f32_operands(m, k, n);
        let a = Tensor::from_shape(&[m, k], &av).expect("a");
        let b = Tensor::from_shape(&[k, n], &bv).expect("b");
        let mmm = tract_linalg::MmmDispatch::native()
            .preferred_kernel(f32::datum_type(), Some(m), Some(k), Some(n))
            .expect("an f32 kernel");
        let (pa, pb) = &mmm.packings()[0];
        let ap = pa.prepare_one(&a, 1, 0).expect("pack a");
        let bp = pb.prepare_one(&b, 0, 1).expect("pack b");
        for threads in [1, 2] {
            let c = Tensor::zero::<f32>(&[m, n]).expect("c");
            on_threads(threads, || packed_product(&*mmm, 0, &*ap, &*bp, &c)).expect("product runs");
            let got = c.to_plain_array_view::<f32>().expect("f32");
            for i in 0..m {
                for j in 0..n {
                    let want = fma_dot(&av, &bv, k, n, i, j);
                    assert_eq!(
                        got[[i, j]].to_bits(),
                        want.to_bits(),
                        "{m}x{k}x{n} ({}) at ({i}, {j}), {threads} threads: {} against {want}",
                        mmm.name(),
                        got[[i, j]]
                    );
                }
            }
        }
    }
}

/// The vendored 32 × 12 and 32 × 8 f32 tiles (24 and 16 accumulators) give the bits of a plain
/// reference: exact tiles and border tiles, a long k (split into k-slices), every fused op our
/// models' products use after it (per-row add, per-column multiply, scalar max, leaky ReLU, an
/// added tensor), and stores into C with strided rows (row-major) and contiguous rows
/// (column-major).
#[test]
fn wide_f32_tiles_match_a_plain_reference() {
    for name in ["avx512_mmm_f32_32x12", "avx512_mmm_f32_32x8"] {
        wide_f32_tile_matches_a_plain_reference(name);
    }
}

fn wide_f32_tile_matches_a_plain_reference(name: &str) {
    use tract_linalg::mmm::{AsInputValue, FusedSpec};
    use tract_linalg::BinOp;
    use tract_onnx::prelude::*;
    let dispatch = tract_linalg::MmmDispatch::native();
    let Some(mmm) = dispatch.runnable().iter().find(|k| k.name() == name) else {
        #[cfg(target_arch = "x86_64")]
        assert!(
            !std::arch::is_x86_feature_detected!("avx512f"),
            "an AVX-512 host runs {name}"
        );
        return;
    };
    for (m, k, n) in [
        (64, 100, 24),
        (70, 300, 50),
        (33, 7, 13),
        (32, 1, 12),
        (40, 3001, 30),
        (32, 256, 1212),
    ] {
        let val = |i: usize, p: usize, q: usize| ((i * p % q) as f32 - (q / 2) as f32) / q as f32;
        let av: Vec<f32> = (0..m * k).map(|i| val(i, 7919, 2003)).collect();
        let bv: Vec<f32> = (0..k * n).map(|i| val(i, 104_729, 1999)).collect();
        let row: Vec<f32> = (0..m).map(|i| val(i, 31, 17)).collect();
        let col: Vec<f32> = (0..n).map(|j| 0.5 + val(j, 13, 11)).collect();
        let dv: Vec<f32> = (0..m * n).map(|i| val(i, 61, 29)).collect();
        let (floor, alpha) = (-0.4f32, 0.1f32);
        let a = Tensor::from_shape(&[m, k], &av).expect("a");
        let b = Tensor::from_shape(&[k, n], &bv).expect("b");
        let (row_t, col_t) = (tensor1(&row), tensor1(&col));
        let (floor_t, alpha_t) = (tensor0(floor), tensor0(alpha));
        let (pa, pb) = &mmm.packings()[0];
        let ap = pa.prepare_one(&a, 1, 0).expect("pack a");
        let bp = pb.prepare_one(&b, 0, 1).expect("pack b");
        let want = |i: usize, j: usize| {
            let v = ((fma_dot(&av, &bv, k, n, i, j) + row[i]) * col[j]).max(floor);
            (if v < 0.0 { v * alpha } else { v }) + dv[i * n + j]
        };
        // (shape of C and of the added tensor, C's axis for m, its axis for n)
        for (shape, m_axis, n_axis) in [([m, n], 0, 1), ([n, m], 1, 0)] {
            let d = if m_axis == 0 {
                Tensor::from_shape(&shape, &dv).expect("d")
            } else {
                let t: Vec<f32> = (0..m * n).map(|x| dv[(x % m) * n + x / m]).collect();
                Tensor::from_shape(&shape, &t).expect("d")
            };
            for threads in [1, 2] {
                let c = Tensor::zero::<f32>(&shape).expect("c");
                on_threads(threads, || {
                    #[allow(unsafe_code)]
                    // SAFETY: A is m × k and B k × n, packed by the kernel's own formats; C and
                    // D are m × n f32 tensors the stores wrap (m and n on the axes named), alive
                    // for the call; the per-row and per-column operands hold m and n values.
                    unsafe {
                        let view = mmm.c_view(Some(m_axis), Some(n_axis));
                        mmm.run(
                            m,
                            n,
                            &[
                                FusedSpec::AddMatMul {
                                    a: AsInputValue::Borrowed(&*ap),
                                    b: AsInputValue::Borrowed(&*bp),
                                    packing: 0,
                                },
                                FusedSpec::BinPerRow(row_t.view(), BinOp::Add),
                                FusedSpec::BinPerCol(col_t.view(), BinOp::Mul),
                                FusedSpec::BinScalar(&floor_t, BinOp::Max),
                                FusedSpec::LeakyRelu(&alpha_t),
                                FusedSpec::AddUnicast(view.wrap(&d.view())),
                                FusedSpec::Store(view.wrap(&c.view())),
                            ],
                        )
                    }
                })
                .expect("product runs");
                let got = c.to_plain_array_view::<f32>().expect("f32");
                for i in 0..m {
                    for j in 0..n {
                        let g = if m_axis == 0 {
                            got[[i, j]]
                        } else {
                            got[[j, i]]
                        };
                        assert_eq!(
                            g.to_bits(),
                            want(i, j).to_bits(),
                            "{name}: {m}x{k}x{n}, m on axis {m_axis}, {threads} threads, at \
                             ({i}, {j}): {g} against {}",
                            want(i, j)
                        );
                    }
                }
            }
        }
    }
}

/// f32 products whose output's innermost axis is n (a dense layer over more tokens than
/// features, AST's 1,214 × 768) run with the operands swapped by the vendored tract-core, so
/// the kernel stores whole columns of C; a residual added to the product (fused into it) and
/// the results keep the bits of one fused multiply-add after another along k, on one thread
/// and two, border tiles included.
#[test]
fn f32_products_store_along_the_innermost_axis() {
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::ops::einsum::EinSum;
    use tract_onnx::tract_core::ops::math::add;
    use tract_onnx::tract_core::ops::matmul::optimized::OptMatMul;
    for (m, k, n) in [(200, 96, 70), (131, 40, 64), (70, 33, 100)] {
        let (av, bv) = f32_operands(m, k, n);
        let rv: Vec<f32> = (0..m * n).map(|i| (i % 17) as f32 - 8.5).collect();
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([m, k])).expect("source");
        let r = model.add_source("r", f32::fact([m, n])).expect("source");
        let w = Tensor::from_shape(&[k, n], &bv).expect("w");
        let w = model.add_const("w", w).expect("const");
        let op = EinSum::new("mk,kn->mn".parse().expect("axes"), f32::datum_type());
        let c = model.wire_node("mm", op, &[x, w]).expect("wire");
        let sum = model.wire_node("add", add(), &[c[0], r]).expect("wire");
        model.select_output_outlets(&sum).expect("outputs");
        let plan = model
            .into_optimized()
            .expect("optimise")
            .into_runnable()
            .expect("plan");
        let products: Vec<&OptMatMul> = plan
            .model()
            .nodes()
            .iter()
            .filter_map(|node| node.op_as::<OptMatMul>())
            .collect();
        assert_eq!(
            products.len(),
            1,
            "{m}x{k}x{n}: one product, the add fused into it"
        );
        let (c_m, c_n) = (products[0].c_m_axis, products[0].c_n_axis);
        assert_eq!(
            (c_m, c_n),
            (Some(1), Some(0)),
            "{m}x{k}x{n}: the kernel's rows should be the output's innermost axis"
        );
        for threads in [1, 2] {
            let inputs = tvec!(
                Tensor::from_shape(&[m, k], &av).expect("x").into_tvalue(),
                Tensor::from_shape(&[m, n], &rv).expect("r").into_tvalue()
            );
            let out = on_threads(threads, || plan.run(inputs)).expect("run");
            let got = out[0].to_plain_array_view::<f32>().expect("f32 output");
            for i in 0..m {
                for j in 0..n {
                    let want = fma_dot(&av, &bv, k, n, i, j) + rv[i * n + j];
                    assert_eq!(
                        got[[i, j]].to_bits(),
                        want.to_bits(),
                        "{m}x{k}x{n} at ({i}, {j}), {threads} threads: {} against {want}",
                        got[[i, j]]
                    );
                }
            }
        }
    }
}

/// Deterministic f32 operands A (m × k) and B (k × n), row-major, spread over about [-1, 1].
fn f32_operands(m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
    let a = (0..m * k)
        .map(|i| ((i * 7919 % 2003) as f32 - 1001.0) / 997.0)
        .collect();
    let b = (0..k * n)
        .map(|i| ((i * 104_729 % 1999) as f32 - 999.0) / 1009.0)
        .collect();
    (a, b)
}

/// Row `i` of A (m × k) times column `j` of B (k × n): one fused multiply-add after another
/// along k, the order the kernels add in.
fn fma_dot(a: &[f32], b: &[f32], k: usize, n: usize, i: usize, j: usize) -> f32 {
    (0..k).fold(0f32, |acc, p| a[i * k + p].mul_add(b[p * n + j], acc))
}

/// Runs `f` with tract's executor on `threads` threads (1: the default, single-threaded).
/// C = A · B on `mmm` alone (no other fused op), A and B packed by its operand packing
/// `packing`, C an m × n tensor of the kernel's sum type (m on axis 0).
pub(crate) fn packed_product(
    mmm: &dyn tract_linalg::mmm::MatMatMul,
    packing: usize,
    a: &dyn tract_linalg::mmm::MMMInputValue,
    b: &dyn tract_linalg::mmm::MMMInputValue,
    c: &tract_onnx::prelude::Tensor,
) -> tract_onnx::prelude::TractResult<()> {
    use tract_linalg::mmm::{AsInputValue, FusedSpec};
    let (m, n) = (c.shape()[0], c.shape()[1]);
    tract_onnx::tract_core::internal::ensure!(a.mn() == m && b.mn() == n, "A, B and C do not fit");
    #[allow(unsafe_code)]
    // SAFETY: A (m × k) and B (k × n) are packed by the kernel's own formats of `packing`, as
    // the check above and the callers' packing make sure; C is the m × n tensor of the
    // kernel's sum type that the store wraps, alive for the call.
    unsafe {
        let store = mmm.c_view(Some(0), Some(1)).wrap(&c.view());
        mmm.run(
            m,
            n,
            &[
                FusedSpec::AddMatMul {
                    a: AsInputValue::Borrowed(a),
                    b: AsInputValue::Borrowed(b),
                    packing,
                },
                FusedSpec::Store(store),
            ],
        )
    }
}

fn on_threads<R>(threads: usize, f: impl FnOnce() -> R) -> R {
    use tract_onnx::tract_core::tract_linalg::multithread::{multithread_tract_scope, Executor};
    if threads == 1 {
        f()
    } else {
        multithread_tract_scope(Executor::multithread(threads), f)
    }
}

/// The vendored DynamicQuantizeLinear (min/max and quantisation) and i32 → f32 Cast split
/// large tensors over tract's threads: on two threads they give the bytes a plain reference
/// gives, with the extremes placed in different parts of the tensor.
#[test]
fn quantise_and_cast_on_two_threads_match_a_plain_reference() {
    use tract_onnx::pb::{ModelProto, NodeProto, OperatorSetIdProto, ValueInfoProto};
    use tract_onnx::prelude::*;
    let n = 200_003usize;
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 0.7)
        .map(|v| if v.abs() < 1e-3 { 0.25 } else { v })
        .collect();
    let mut x = x;
    x[n - 2] = -3.5; // the minimum, in the last part
    x[n / 2] = 2.25; // the maximum, in a middle one
    let xi: Vec<i32> = (0..n as i32).map(|i| i.wrapping_mul(48_271) >> 3).collect();
    // A graph input: a tensor of ONNX element type `elem` (1 float, 6 int32) and n values.
    let input = |name: &str, elem: i32| {
        use tract_onnx::pb::tensor_shape_proto::{dimension, Dimension};
        use tract_onnx::pb::{type_proto, TensorShapeProto, TypeProto};
        let dim = Dimension {
            value: Some(dimension::Value::DimValue(n as i64)),
            ..Default::default()
        };
        let tensor = type_proto::Tensor {
            elem_type: elem,
            shape: Some(TensorShapeProto { dim: vec![dim] }),
        };
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(tensor)),
                ..Default::default()
            }),
            ..Default::default()
        }
    };
    let value = |name: &str| ValueInfoProto {
        name: name.into(),
        ..Default::default()
    };
    let node = |op: &str, inputs: &[&str], outputs: &[&str], attrs| NodeProto {
        op_type: op.into(),
        name: format!("{op}_{}", outputs[0]),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    };
    let to_float = tract_onnx::pb::AttributeProto {
        name: "to".into(),
        r#type: tract_onnx::pb::attribute_proto::AttributeType::Int as i32,
        i: 1,
        ..Default::default()
    };
    let graph = tract_onnx::pb::GraphProto {
        name: "g".into(),
        node: vec![
            node(
                "DynamicQuantizeLinear",
                &["x"],
                &["y", "scale", "zp"],
                vec![],
            ),
            node("Cast", &["xi"], &["xf"], vec![to_float]),
        ],
        input: vec![input("x", 1), input("xi", 6)],
        output: vec![value("y"), value("scale"), value("zp"), value("xf")],
        ..Default::default()
    };
    let proto = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(graph),
        ..Default::default()
    };
    let plan = tract_onnx::onnx()
        .model_for_proto_model(&proto)
        .expect("model")
        .into_optimized()
        .expect("optimise")
        .into_runnable()
        .expect("plan");
    // The reference: onnxruntime's definition of DynamicQuantizeLinear.
    let (lo, hi) = x
        .iter()
        .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let scale = (hi - lo) / 255.0;
    let zp = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as u8;
    let want_y: Vec<u8> = x
        .iter()
        .map(|&v| ((v / scale).round_ties_even() as i32 + zp as i32).clamp(0, 255) as u8)
        .collect();
    let want_xf: Vec<f32> = xi.iter().map(|&v| v as f32).collect();
    for threads in [1, 2] {
        let inputs = tvec!(
            Tensor::from_shape(&[n], &x).expect("x").into_tvalue(),
            Tensor::from_shape(&[n], &xi).expect("xi").into_tvalue()
        );
        let out = on_threads(threads, || plan.run(inputs)).expect("run");
        let view = |i: usize| out[i].try_as_plain_ram().expect("plain");
        assert_eq!(
            view(1).as_slice::<f32>().expect("scale"),
            [scale],
            "{threads} threads"
        );
        assert_eq!(
            view(2).as_slice::<u8>().expect("zp"),
            [zp],
            "{threads} threads"
        );
        assert!(
            view(0).as_slice::<u8>().expect("y") == want_y,
            "y, {threads} threads"
        );
        assert!(
            view(3).as_slice::<f32>().expect("xf") == want_xf,
            "cast, {threads} threads"
        );
    }
}

/// The int8 im2col packing writer (tract-linalg `KOut4Writer`, K four at a time per lane) lays
/// out slices that cross panel boundaries exactly as value-by-value writes do (vendored
/// patch: such slices are stored panel by panel instead of through `write`).
#[test]
fn int8_packing_of_long_slices_matches_value_by_value_writes() {
    use tract_linalg::pack::{PackedI8K4, PackingWriter};
    let fmt = PackedI8K4::new(16);
    for (k, mn, cut) in [
        (6, 37, 5),
        (9, 496, 496),
        (4, 16, 7),
        (5, 33, 1),
        (3, 20, 40),
    ] {
        let src: Vec<i8> = (0..k * mn).map(|i| (i * 31 % 251) as u8 as i8).collect();
        let len = fmt.len(k, mn);
        let (mut a, mut b) = (vec![0i8; len], vec![0i8; len]);
        let mut w = fmt.write_with_k_outer(a.as_mut_ptr(), k, mn);
        for &x in &src {
            w.write(x);
        }
        // The same values in slices of `cut`, crossing rows and panels.
        let mut w = fmt.write_with_k_outer(b.as_mut_ptr(), k, mn);
        for chunk in src.chunks(cut) {
            w.write_slice(chunk);
        }
        assert_eq!(a, b, "k {k} mn {mn} slices of {cut}");
    }
}

/// The vendored `RealFft` (an ONNX DFT of a real signal, vendor/README.md) against tract's
/// own path for it, a zero imaginary part padded on and the complex `Fft`: the same bits, in
/// f32 and f64, for the contiguous case (the transformed axis just before the last) and a
/// strided one.
#[test]
fn real_fft_gives_the_padded_complex_ffts_bits() {
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::ops::array::{Pad, PadMode};
    use tract_onnx::tract_core::ops::fft::{Fft, RealFft};

    fn run_both<T: Datum + Copy>(shape: &[usize], axis: usize, values: Vec<T>) -> (Tensor, Tensor) {
        let input = Tensor::from_shape(shape, &values).expect("input");
        let rank = shape.len();
        let run = |real: bool| -> Tensor {
            let mut m = TypedModel::default();
            let x = m
                .add_source("x", T::datum_type().fact(shape))
                .expect("source");
            let y = if real {
                m.wire_node("fft", RealFft { axis }, &[x]).expect("RealFft")
            } else {
                let mut pads = vec![(0, 0); rank - 1];
                pads.push((0, 1));
                let mode = PadMode::Constant(Arc::new(tensor0(0f32)));
                let p = m.wire_node("pad", Pad { pads, mode }, &[x]).expect("Pad");
                m.wire_node(
                    "fft",
                    Fft {
                        axis,
                        inverse: false,
                    },
                    &p,
                )
                .expect("Fft")
            };
            m.select_output_outlets(&y).expect("outputs");
            let out = m
                .into_runnable()
                .expect("plan")
                .run(tvec!(input.clone().into_tvalue()))
                .expect("run");
            out[0].clone().into_tensor()
        };
        (run(true), run(false))
    }
    let signal = |n: usize| -> Vec<f64> {
        (0..n)
            .map(|i| ((i * 7919) % 1000) as f64 / 500.0 - 1.0 + (i as f64 * 0.37).sin())
            .collect()
    };
    // (shape, axis): contiguous lanes of 2,048 and of 6 (a length with a factor 3), strided
    for (shape, axis) in [
        (vec![1, 5, 1, 2048, 1], 3),
        (vec![3, 6, 1], 1),
        (vec![4, 12, 3, 1], 1),
    ] {
        let n: usize = shape.iter().product();
        let (a, b) = run_both::<f64>(&shape, axis, signal(n));
        assert_eq!(a.shape(), b.shape(), "{shape:?}");
        let bits = |t: &Tensor| -> Vec<u64> {
            t.to_plain_array_view::<f64>()
                .expect("f64")
                .iter()
                .map(|v| v.to_bits())
                .collect()
        };
        assert_eq!(bits(&a), bits(&b), "f64 {shape:?} axis {axis}");
        let (a, b) = run_both::<f32>(&shape, axis, signal(n).iter().map(|&v| v as f32).collect());
        let bits = |t: &Tensor| -> Vec<u32> {
            t.to_plain_array_view::<f32>()
                .expect("f32")
                .iter()
                .map(|v| v.to_bits())
                .collect()
        };
        assert_eq!(bits(&a), bits(&b), "f32 {shape:?} axis {axis}");
    }
}
