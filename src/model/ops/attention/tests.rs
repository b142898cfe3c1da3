//! The fused attention against a plain implementation, on every path this CPU runs.

use super::softmax::bf16;
use super::*;
use tract_ndarray::{Array2, Array3};

pub(super) fn pseudo(shape: (usize, usize, usize), seed: u64) -> Array3<f32> {
    let mut noise = crate::noise::Noise::new(seed);
    Array3::from_shape_fn(shape, |_| noise.uniform())
}

fn naive(
    q: &Array3<f32>,
    k: &Array3<f32>,
    v: &Array3<f32>,
    bias: Option<&Array3<f32>>,
    scale: f32,
) -> Vec<Array2<f32>> {
    naive_rounded(q, k, v, bias, scale, None)
}

/// `naive` with Q, K, V and each exp(s − max) rounded by `round` for the products, where
/// given; scores, softmax sums and normalisation unrounded.
fn naive_rounded(
    q: &Array3<f32>,
    k: &Array3<f32>,
    v: &Array3<f32>,
    bias: Option<&Array3<f32>>,
    scale: f32,
    round: Option<fn(f32) -> f32>,
) -> Vec<Array2<f32>> {
    let rounded = |a: &Array3<f32>| round.map_or_else(|| a.clone(), |r| a.mapv(r));
    let (q, k, v) = (rounded(q), rounded(k), rounded(v));
    let (h, n, d) = q.dim();
    let m = k.dim().1;
    (0..h)
        .map(|h| {
            let mut o = Array2::zeros((n, d));
            for i in 0..n {
                let s: Vec<f64> = (0..m)
                    .map(|j| {
                        let dot: f64 = (0..d)
                            .map(|e| q[(h, i, e)] as f64 * k[(h, j, e)] as f64)
                            .sum();
                        dot * scale as f64 + bias.map_or(0.0, |b| b[(h, i, j)] as f64)
                    })
                    .collect();
                let mx = s.iter().copied().fold(f64::MIN, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - mx).exp()).collect();
                let sum: f64 = e.iter().sum();
                let w: Vec<f64> = e
                    .iter()
                    .map(|&x| round.map_or(x, |r| r(x as f32) as f64))
                    .collect();
                for f in 0..d {
                    let dot: f64 = (0..m).map(|j| w[j] * v[(h, j, f)] as f64).sum();
                    o[(i, f)] = (dot / sum) as f32;
                }
            }
            o
        })
        .collect()
}

/// `attend` on arrays stored in the order of `perm` (Q, K, V, bias and output alike),
/// the bias with one head for all if it has one; returns one (n, d) array per head.
fn run(
    q: &Array3<f32>,
    k: &Array3<f32>,
    v: &Array3<f32>,
    bias: Option<&Array3<f32>>,
    scale: f32,
    perm: [usize; 3],
    path: Path,
) -> Vec<Array2<f32>> {
    // Where each of (head, token, feature) sits once stored in `perm` order.
    let mut axes = [0; 3];
    for (pos, &a) in perm.iter().enumerate() {
        axes[a] = pos;
    }
    let layout = Layout { axes, rank: 3 };
    let stored = |a: &Array3<f32>| {
        a.view()
            .permuted_axes(perm)
            .as_standard_layout()
            .into_owned()
            .into_tensor()
    };
    let (qt, kt, vt) = (stored(q), stored(k), stored(v));
    let bt = bias.map(stored);
    let (h, n, d) = q.dim();
    let out_shape: Vec<usize> = perm.iter().map(|&a| [h, n, d][a]).collect();
    let out = Tensor::zero::<f32>(&out_shape).expect("output");
    attend_on(
        path,
        layout.operand(&qt).expect("q"),
        layout.operand(&kt).expect("k"),
        layout.operand(&vt).expect("v"),
        bt.as_ref()
            .map(|b| ScoreBias::Added(layout.operand(b).expect("bias"))),
        scale,
        layout.operand(&out).expect("out"),
    )
    .expect("attention runs");
    let o = out
        .to_plain_array_view::<f32>()
        .expect("f32")
        .into_dimensionality::<tract_ndarray::Ix3>()
        .expect("rank 3")
        .permuted_axes(axes)
        .to_owned();
    (0..h)
        .map(|i| o.index_axis(tract_ndarray::Axis(0), i).to_owned())
        .collect()
}

/// Every path this CPU runs f32 attention on: tract's kernels, and the AVX-512 tiles
/// where it has AVX-512.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
fn f32_paths() -> Vec<Path> {
    let mut paths = vec![Path::Tract];
    #[cfg(target_arch = "x86_64")]
    if avx512::available(false) {
        paths.push(Path::Avx512 { bf16: false });
    }
    paths
}

/// The largest |got − want| over every head's values.
fn max_diff<'a>(
    got: impl IntoIterator<Item = tract_ndarray::ArrayView2<'a, f32>>,
    want: &[Array2<f32>],
) -> f32 {
    got.into_iter()
        .zip(want)
        .map(|(g, w)| (&g - w).iter().fold(0f32, |a, x| a.max(x.abs())))
        .fold(0f32, f32::max)
}

fn check_in(h: usize, n: usize, m: usize, d: usize, with_bias: bool, perm: [usize; 3]) {
    let q = pseudo((h, n, d), 1) * 4.0;
    let k = pseudo((h, m, d), 2) * 4.0;
    let v = pseudo((h, m, d), 3);
    let b = pseudo((h, n, m), 4) * 3.0;
    let bias = with_bias.then_some(&b);
    let want = naive(&q, &k, &v, bias, 0.125);
    for path in f32_paths() {
        let got = run(&q, &k, &v, bias, 0.125, perm, path);
        let diff = max_diff(got.iter().map(|g| g.view()), &want);
        assert!(
            diff < 2e-5,
            "{path:?} h{h} n{n} m{m} d{d} bias {with_bias} layout {perm:?}: max |diff| {diff}"
        );
    }
}

fn check(h: usize, n: usize, m: usize, d: usize, with_bias: bool) {
    check_in(h, n, m, d, with_bias, [0, 1, 2]);
}

#[test]
fn matches_a_plain_implementation_across_block_edges() {
    // Token counts around the block size, a single block, and non-square scores.
    for (n, m) in [(5, 5), (95, 97), (96, 96), (97, 40), (250, 250), (300, 17)] {
        check(3, n, m, 16, false);
        check(2, n, m, 64, true);
    }
}

#[test]
fn reads_and_writes_operands_in_their_own_layouts() {
    // Tokens outermost, heads in the middle, as AST and BEATs store Q, K, V and the
    // output; and features outermost, where no axis is contiguous but the head.
    for perm in [[1, 0, 2], [2, 1, 0]] {
        check_in(3, 37, 29, 16, true, perm);
        check_in(2, 16, 50, 8, false, perm);
        // Enough keys that P·V runs in k-slices, its output rows interleaved with the
        // other heads' (tokens outermost).
        check_in(2, 40, 1500, 8, false, perm);
        // The same with d = 64 and enough query rows for the 32-row kernels: P·V on the
        // narrower one (`p_v_takes_a_narrower_kernel_where_it_pads_less`).
        check_in(2, 250, 1500, 64, false, perm);
    }
}

#[test]
fn p_v_takes_a_narrower_kernel_where_it_pads_less() {
    let ks = Kernels::new(250, 250, 64).expect("kernels");
    let runnable = |name: &str| {
        tract_linalg::MmmDispatch::native()
            .runnable()
            .iter()
            .any(|k| k.name() == name)
    };
    if ks.mmm.name() == "avx512_mmm_f32_32x12" && runnable("avx512_mmm_f32_32x8") {
        assert_eq!(ks.pv.name(), "avx512_mmm_f32_32x8");
    } else {
        assert_eq!(ks.pv.name(), ks.mmm.name());
    }
    // d = 60 pads no less on 8 columns than on 12.
    let ks = Kernels::new(250, 250, 60).expect("kernels");
    assert_eq!(ks.pv.name(), ks.mmm.name());
    // Both products on their own kernels, against the plain implementation (the cases
    // above with d = 64 and 250 query rows run the same pair).
    check(2, 250, 250, 64, false);
}

#[test]
fn a_bias_with_one_head_serves_every_head() {
    let (h, n, m, d) = (3, 21, 19, 8);
    let q = pseudo((h, n, d), 5);
    let k = pseudo((h, m, d), 6);
    let v = pseudo((h, m, d), 7);
    let one = pseudo((1, n, m), 8);
    let every = tract_ndarray::concatenate(
        tract_ndarray::Axis(0),
        &[one.view(), one.view(), one.view()],
    )
    .expect("bias");
    let want = naive(&q, &k, &v, Some(&every), 0.3);
    for path in f32_paths() {
        let got = run(&q, &k, &v, Some(&one), 0.3, [0, 1, 2], path);
        let diff = max_diff(got.iter().map(|g| g.view()), &want);
        assert!(diff < 2e-5, "{path:?}: max |diff| {diff}");
    }
}

#[test]
fn runs_heads_on_a_thread_pool_with_the_same_result() {
    let pool = Executor::multithread(2);
    tract_linalg::multithread::multithread_tract_scope(pool, || check(4, 130, 130, 32, true));
}

/// `attend` on plain (head, token, feature) Q, K, V with a gated bias; the output.
fn gated(
    [q, k, v]: [&Tensor; 3],
    bias: Operand,
    gate: Operand,
    diagonals: bool,
    path: Path,
) -> TractResult<Tensor> {
    let plain = Layout {
        axes: [0, 1, 2],
        rank: 3,
    };
    let out = Tensor::zero::<f32>(q.shape())?;
    attend_on(
        path,
        plain.operand(q)?,
        plain.operand(k)?,
        plain.operand(v)?,
        Some(ScoreBias::Gated {
            bias,
            gate,
            diagonals,
        }),
        0.125,
        plain.operand(&out)?,
    )?;
    Ok(out)
}

/// `gated`'s output against `want`: the largest |difference|.
fn gated_diff(
    qkv: [&Tensor; 3],
    bias: Operand,
    gate: Operand,
    diagonals: bool,
    path: Path,
    want: &[Array2<f32>],
) -> f32 {
    let out = gated(qkv, bias, gate, diagonals, path).expect("attention runs");
    let o = out.to_plain_array_view::<f32>().expect("f32");
    let o = o
        .into_dimensionality::<tract_ndarray::Ix3>()
        .expect("rank 3");
    max_diff(o.outer_iter(), want)
}

/// gate × bias, the bias stored key-major (the vector path) or query-major, the gate per
/// head or one for all heads, against the plain implementation given the product.
#[test]
fn a_gated_bias_adds_the_gate_times_the_bias() {
    let (h, n, m, d) = (3, 37, 29, 16);
    let q = pseudo((h, n, d), 11) * 4.0;
    let k = pseudo((h, m, d), 12) * 4.0;
    let v = pseudo((h, m, d), 13);
    let b = pseudo((h, n, m), 14) * 3.0;
    let (qt, kt, vt) = (
        q.clone().into_tensor(),
        k.clone().into_tensor(),
        v.clone().into_tensor(),
    );
    let plain = Layout {
        axes: [0, 1, 2],
        rank: 3,
    };
    for gate_heads in [h, 1] {
        let g = pseudo((gate_heads, n, 1), 15) + 1.5;
        let product = tract_ndarray::Array3::from_shape_fn((h, n, m), |(hh, i, j)| {
            g[(hh % gate_heads, i, 0)] * b[(hh, i, j)]
        });
        let want = naive(&q, &k, &v, Some(&product), 0.125);
        let gt = g.clone().into_tensor();
        // (head, query, key) stored as (head, key, query): the query axis contiguous.
        let key_major = b
            .view()
            .permuted_axes([0, 2, 1])
            .as_standard_layout()
            .into_owned()
            .into_tensor();
        let query_major = b.clone().into_tensor();
        let layouts = [
            (
                &key_major,
                Layout {
                    axes: [0, 2, 1],
                    rank: 3,
                },
            ),
            (&query_major, plain.clone()),
        ];
        for ((bt, bias_layout), path) in layouts
            .iter()
            .flat_map(|l| f32_paths().into_iter().map(move |p| (l, p)))
        {
            let diff = gated_diff(
                [&qt, &kt, &vt],
                bias_layout.operand(bt).expect("bias"),
                plain.operand(&gt).expect("gate"),
                false,
                path,
                &want,
            );
            assert!(
                diff < 2e-5,
                "{path:?} gate heads {gate_heads}, bias axes {:?}: max |diff| {diff}",
                bias_layout.axes
            );
        }
    }
}

/// A bias that depends on k − q alone, given as its diagonals, against the plain
/// implementation given the whole gated table; per-head and shared diagonals.
#[test]
fn a_gated_bias_given_by_its_diagonals_is_the_whole_table() {
    let (h, n, m, d) = (3, 37, 29, 16);
    let q = pseudo((h, n, d), 21) * 4.0;
    let k = pseudo((h, m, d), 22) * 4.0;
    let v = pseudo((h, m, d), 23);
    let plain = Layout {
        axes: [0, 1, 2],
        rank: 3,
    };
    let (qt, kt, vt) = (
        q.clone().into_tensor(),
        k.clone().into_tensor(),
        v.clone().into_tensor(),
    );
    let g = pseudo((h, n, 1), 25) + 1.5;
    let gt = g.clone().into_tensor();
    for table_heads in [h, 1] {
        let diag = pseudo((table_heads, 1, n + m - 1), 24) * 3.0;
        let product = tract_ndarray::Array3::from_shape_fn((h, n, m), |(hh, i, j)| {
            g[(hh, i, 0)] * diag[(hh % table_heads, 0, i + m - 1 - j)]
        });
        let want = naive(&q, &k, &v, Some(&product), 0.125);
        let dt = diag.clone().into_tensor();
        for path in f32_paths() {
            let diff = gated_diff(
                [&qt, &kt, &vt],
                plain.operand(&dt).expect("diagonals"),
                plain.operand(&gt).expect("gate"),
                true,
                path,
                &want,
            );
            assert!(
                diff < 2e-5,
                "{path:?} table heads {table_heads}: max |diff| {diff}"
            );
        }
    }
    // Diagonals of the wrong length are refused, not read out of bounds.
    let short = pseudo((h, 1, n + m - 2), 26).into_tensor();
    for path in f32_paths() {
        let refused = gated(
            [&qt, &kt, &vt],
            plain.operand(&short).expect("diagonals"),
            plain.operand(&gt).expect("gate"),
            true,
            path,
        );
        assert!(refused.is_err(), "{path:?}");
    }
}

/// `x` rounded to bfloat16 as the bf16 path rounds it, as an f32.
fn bf16_round(x: f32) -> f32 {
    f32::from_bits(bf16(x) << 16)
}

/// `naive` with the bf16 path's roundings: Q, K, V and each exp(s − max) rounded to
/// bfloat16 for the products.
fn naive_bf16(
    q: &Array3<f32>,
    k: &Array3<f32>,
    v: &Array3<f32>,
    bias: Option<&Array3<f32>>,
    scale: f32,
) -> Vec<Array2<f32>> {
    naive_rounded(q, k, v, bias, scale, Some(bf16_round))
}

/// The bf16 products against the plain implementation with the same roundings (where
/// the CPU runs them), across block and tile edges, odd key and feature counts, layouts
/// with and without contiguous features, and an added bias; and against f32 within
/// bfloat16's precision. Without AVX-512 BF16, `Precision::Bf16` is the f32 path.
#[test]
fn bf16_products_match_the_plain_implementation_with_the_same_roundings() {
    let cases = [
        (3, 5, 5, 16, false, [0, 1, 2]),
        (2, 95, 97, 64, true, [0, 1, 2]),
        (2, 130, 301, 64, false, [1, 0, 2]),
        (1, 49, 33, 40, true, [1, 0, 2]),
        (2, 7, 13, 7, true, [0, 1, 2]),
        (2, 50, 21, 24, true, [2, 1, 0]),
    ];
    for (h, n, m, d, with_bias, perm) in cases {
        let q = pseudo((h, n, d), 31) * 4.0;
        let k = pseudo((h, m, d), 32) * 4.0;
        let v = pseudo((h, m, d), 33);
        let b = pseudo((h, n, m), 34) * 3.0;
        let bias = with_bias.then_some(&b);
        let got = run(
            &q,
            &k,
            &v,
            bias,
            0.125,
            perm,
            Path::for_precision(Precision::Bf16),
        );
        let case = format!("h{h} n{n} m{m} d{d} bias {with_bias} layout {perm:?}");
        if !Precision::Bf16.runs_bf16() {
            let f32_path = run(
                &q,
                &k,
                &v,
                bias,
                0.125,
                perm,
                Path::for_precision(Precision::F32),
            );
            assert_eq!(got, f32_path, "{case}: not the f32 path");
            continue;
        }
        let same = max_diff(
            got.iter().map(|g| g.view()),
            &naive_bf16(&q, &k, &v, bias, 0.125),
        );
        let exact = max_diff(
            got.iter().map(|g| g.view()),
            &naive(&q, &k, &v, bias, 0.125),
        );
        println!("{case}: vs same roundings {same:.1e}, vs f32 {exact:.1e}");
        assert!(
            same < 2e-4,
            "{case}: max |diff| {same} with the same roundings"
        );
        assert!(exact < 5e-3, "{case}: max |diff| {exact} from f32");
    }
}

/// BEATs' gated bias by its diagonals, on the bf16 path: the same bias as the f32 path.
#[test]
fn bf16_products_take_a_gated_bias_by_its_diagonals() {
    let (h, n, m, d) = (2, 53, 53, 64);
    let q = pseudo((h, n, d), 41) * 4.0;
    let k = pseudo((h, m, d), 42) * 4.0;
    let v = pseudo((h, m, d), 43);
    let g = pseudo((h, n, 1), 45) + 1.5;
    let diag = pseudo((1, 1, n + m - 1), 44) * 3.0;
    let product = tract_ndarray::Array3::from_shape_fn((h, n, m), |(hh, i, j)| {
        g[(hh, i, 0)] * diag[(0, 0, i + m - 1 - j)]
    });
    let want = if Precision::Bf16.runs_bf16() {
        naive_bf16(&q, &k, &v, Some(&product), 0.125)
    } else {
        naive(&q, &k, &v, Some(&product), 0.125)
    };
    let plain = Layout {
        axes: [0, 1, 2],
        rank: 3,
    };
    let [qt, kt, vt, gt, dt] = [q, k, v, g, diag].map(|a| a.into_tensor());
    let diff = gated_diff(
        [&qt, &kt, &vt],
        plain.operand(&dt).expect("diagonals"),
        plain.operand(&gt).expect("gate"),
        true,
        Path::for_precision(Precision::Bf16),
        &want,
    );
    assert!(diff < 1e-3, "max |diff| {diff}");
}
