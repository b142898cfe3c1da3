//! The vendored AVX2 int8 kernel (`avx2_mmm_i32_8x8`) on each of its three loops against
//! plain i32 sums: B without -128 (|A| against B signed by A), A without -128 (|B| against A
//! signed by B) and both holding -128 (16-bit pairs); vendor/README.md says why the loop
//! depends on -128. The operands sit at the extremes where a 16-bit pair sum would saturate.

use crate::vendored_tract::packed_product;
use tract_linalg::mmm::MatMatMul;
use tract_onnx::prelude::*;

/// One operand's value at a flat index.
type Values = Box<dyn Fn(usize) -> i8>;

/// Where `avx2_mmm_i32_8x8` runs (any x86-64 CPU with AVX2 and FMA), each loop is exact for
/// tiles that fill the kernel and tiles that do not, and K lengths that are not a multiple
/// of 4.
#[test]
fn avx2_int8_kernel_is_exact_on_each_of_its_loops() {
    let dispatch = tract_linalg::MmmDispatch::native();
    let Some(mmm) = dispatch
        .runnable()
        .iter()
        .find(|k| k.name() == "avx2_mmm_i32_8x8")
    else {
        #[cfg(target_arch = "x86_64")]
        assert!(
            !(std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")),
            "an AVX2 + FMA host runs avx2_mmm_i32_8x8"
        );
        return;
    };
    // Values of one operand: the index picks from a set, so that -128 is everywhere or
    // nowhere, as each case needs.
    let pick = |set: &'static [i8]| move |i: usize| set[(i * 7 + i / 5) % set.len()];
    let no_min: &[i8] = &[-127, 127, -126, 0, 1, -1, 64, -65, 126];
    let with_min: &[i8] = &[-128, 127, -127, -128, 0, 3, -128, -2, 126];
    let cases: [(&str, Values, Values); 6] = [
        (
            "B without -128",
            Box::new(pick(with_min)),
            Box::new(pick(no_min)),
        ),
        (
            "A without -128",
            Box::new(pick(no_min)),
            Box::new(pick(with_min)),
        ),
        (
            "both with -128",
            Box::new(pick(with_min)),
            Box::new(pick(with_min)),
        ),
        // Every pair at its largest: 2 * 128 * 127 with A = -128 and B = -127, and B = 127.
        (
            "A all -128",
            Box::new(|_| -128),
            Box::new(|i| if i % 3 == 0 { 127 } else { -127 }),
        ),
        (
            "B all -128",
            Box::new(|i| if i % 3 == 0 { 127 } else { -127 }),
            Box::new(|_| -128),
        ),
        // -128 in a few places only, so tiles of one product take different loops.
        (
            "-128 in places",
            Box::new(|i| {
                if i % 97 == 0 {
                    -128
                } else {
                    ((i * 31) % 255) as i8
                }
            }),
            Box::new(|i| {
                if i % 389 == 0 {
                    -128
                } else {
                    ((i * 57) % 255) as u8 as i8
                }
            }),
        ),
    ];
    for (m, k, n) in [
        (8, 4, 8),
        (16, 256, 24),
        (37, 67, 45),
        (9, 1, 3),
        (64, 3001, 40),
    ] {
        for (case, a_at, b_at) in &cases {
            let av: Vec<i8> = (0..m * k).map(a_at).collect();
            let bv: Vec<i8> = (0..k * n).map(b_at).collect();
            let got = product(&**mmm, m, k, n, &av, &bv);
            for i in 0..m {
                for j in 0..n {
                    let want: i32 = (0..k)
                        .map(|p| av[i * k + p] as i32 * bv[p * n + j] as i32)
                        .sum();
                    assert_eq!(got[i * n + j], want, "{case}: {m}x{k}x{n} at ({i}, {j})");
                }
            }
        }
    }
}

/// A (m × k) times B (k × n) through the kernel's i8 packing, C as m × n i32 values.
fn product(mmm: &dyn MatMatMul, m: usize, k: usize, n: usize, av: &[i8], bv: &[i8]) -> Vec<i32> {
    let a = Tensor::from_shape(&[m, k], av).expect("a");
    let b = Tensor::from_shape(&[k, n], bv).expect("b");
    let (pa, pb) = &mmm.packings()[1];
    let ap = pa.prepare_one(&a, 1, 0).expect("pack a");
    let bp = pb.prepare_one(&b, 0, 1).expect("pack b");
    let c = Tensor::zero::<i32>(&[m, n]).expect("c");
    packed_product(mmm, 1, &*ap, &*bp, &c).expect("product runs");
    c.to_plain_array_view::<i32>()
        .expect("i32")
        .iter()
        .copied()
        .collect()
}
