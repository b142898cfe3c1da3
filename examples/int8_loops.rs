//! How fast can an exact int8 product run on this x86-64 core without VNNI: inner loops alone.
//!
//! `cargo run --release --example int8_loops` times the inner loop of the vendored AVX2 int8
//! kernel (`vpsignb` + `vpmaddubsw`, exact) against onnxruntime's kind of loop (`vpmaddubsw`
//! on u8 × s8 without a guard: a pair's sum saturates past 32,767) and against loops over
//! operands widened to 16 bits before the product (`vpmaddwd` only, exact), in cycles per 256
//! products (one 8 × 8 tile over 4 k, or the same count on other tiles). Operands stay in L1,
//! so this is the arithmetic's ceiling, not a matrix product's speed. The clock is measured
//! with a chain of dependent additions (one cycle each). BENCHMARKS.md quotes its output.

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // inline assembly is the point of this example
mod loops {
    use std::arch::asm;
    use std::time::Instant;

    /// Blocks of 256 products per pass: k = 768 on an 8 × 8 tile.
    pub const BLOCKS: usize = 192;

    macro_rules! sign_col {
        ($c:literal, $t:literal) => {
            concat!(
                "vpbroadcastd ymm",
                $t,
                ", dword ptr [{b} + ",
                $c,
                " * 4]\n",
                "vpsignb ymm",
                $t,
                ", ymm",
                $t,
                ", ymm8\n",
                "vpmaddubsw ymm",
                $t,
                ", ymm9, ymm",
                $t,
                "\n",
                "vpmaddwd ymm",
                $t,
                ", ymm",
                $t,
                ", ymm15\n",
                "vpaddd ymm",
                $c,
                ", ymm",
                $c,
                ", ymm",
                $t,
                "\n",
            )
        };
    }

    /// The vendored kernel's loop where B holds no -128: |A| once a block, B signed by A.
    pub fn exact_sign(a: &[u8], b: &[u8], reps: usize) {
        for _ in 0..reps {
            // SAFETY: reads BLOCKS * 32 bytes of each operand (the caller's buffers are larger);
            // every register written is declared clobbered.
            unsafe {
                asm!(
                    "vpcmpeqw ymm15, ymm15, ymm15",
                    "vpsrlw ymm15, ymm15, 15",
                    "2:",
                    "vmovdqu ymm8, [{a}]",
                    "vpabsb ymm9, ymm8",
                    sign_col!(0, 10), sign_col!(1, 11), sign_col!(2, 12), sign_col!(3, 13),
                    sign_col!(4, 10), sign_col!(5, 11), sign_col!(6, 12), sign_col!(7, 13),
                    "add {a}, 32",
                    "add {b}, 32",
                    "dec {n}",
                    "jnz 2b",
                    a = inout(reg) a.as_ptr() => _, b = inout(reg) b.as_ptr() => _,
                    n = inout(reg) BLOCKS => _,
                    out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
                    out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
                    out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
                    out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
                    options(nostack, readonly),
                );
            }
        }
    }

    macro_rules! sat_row {
        ($r:literal, $c0:literal, $c1:literal) => {
            concat!(
                "vpbroadcastd ymm12, dword ptr [{a} + ",
                $r,
                " * 4]\n",
                "vpmaddubsw ymm13, ymm12, ymm8\n",
                "vpmaddwd ymm13, ymm13, ymm15\n",
                "vpaddd ymm",
                $c0,
                ", ymm",
                $c0,
                ", ymm13\n",
                "vpmaddubsw ymm14, ymm12, ymm9\n",
                "vpmaddwd ymm14, ymm14, ymm15\n",
                "vpaddd ymm",
                $c1,
                ", ymm",
                $c1,
                ", ymm14\n",
            )
        };
    }

    /// onnxruntime's kind of AVX2 loop: a row of A (u8) broadcast against two vectors of B
    /// (s8, 16 columns), `vpmaddubsw` unguarded. 4 rows × 16 columns × 4 k = 256 products.
    pub fn saturating(a: &[u8], b: &[u8], reps: usize) {
        for _ in 0..reps {
            // SAFETY: as in `exact_sign`; B advances 64 bytes a block (BLOCKS * 64 < its length).
            unsafe {
                asm!(
                    "vpcmpeqw ymm15, ymm15, ymm15",
                    "vpsrlw ymm15, ymm15, 15",
                    "2:",
                    "vmovdqu ymm8, [{b}]",
                    "vmovdqu ymm9, [{b} + 32]",
                    sat_row!(0, 0, 1), sat_row!(1, 2, 3), sat_row!(2, 4, 5), sat_row!(3, 6, 7),
                    "add {a}, 16",
                    "add {b}, 64",
                    "dec {n}",
                    "jnz 2b",
                    a = inout(reg) a.as_ptr() => _, b = inout(reg) b.as_ptr() => _,
                    n = inout(reg) BLOCKS => _,
                    out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
                    out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
                    out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
                    out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
                    options(nostack, readonly),
                );
            }
        }
    }

    macro_rules! wide_col {
        ($c:literal, $t:literal) => {
            concat!(
                "vpbroadcastd ymm",
                $t,
                ", dword ptr [{b} + ",
                $c,
                " * 4]\n",
                "vpmaddwd ymm",
                $t,
                ", ymm",
                $t,
                ", ymm8\n",
                "vpaddd ymm",
                $c,
                ", ymm",
                $c,
                ", ymm",
                $t,
                "\n",
            )
        };
    }

    /// Both operands packed as 16-bit pairs: per 2 k, A's 8 rows in one register, each of B's
    /// 8 columns broadcast (a pair), `vpmaddwd` + `vpaddd`. Exact for any i8 operands.
    pub fn wide_8x8(a: &[u8], b: &[u8], reps: usize) {
        for _ in 0..reps {
            // SAFETY: as in `exact_sign`; 2 * BLOCKS steps of 32 bytes each operand.
            unsafe {
                asm!(
                    "2:",
                    "vmovdqu ymm8, [{a}]",
                    wide_col!(0, 10), wide_col!(1, 11), wide_col!(2, 12), wide_col!(3, 13),
                    wide_col!(4, 10), wide_col!(5, 11), wide_col!(6, 12), wide_col!(7, 13),
                    "add {a}, 32",
                    "add {b}, 32",
                    "dec {n}",
                    "jnz 2b",
                    a = inout(reg) a.as_ptr() => _, b = inout(reg) b.as_ptr() => _,
                    n = inout(reg) 2 * BLOCKS => _,
                    out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
                    out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
                    out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
                    out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
                    options(nostack, readonly),
                );
            }
        }
    }

    macro_rules! wide_col2 {
        ($c:literal, $d:literal) => {
            concat!(
                "vpbroadcastd ymm14, dword ptr [{b} + ",
                $c,
                " * 4]\n",
                "vpmaddwd ymm15, ymm14, ymm12\n",
                "vpaddd ymm",
                $c,
                ", ymm",
                $c,
                ", ymm15\n",
                "vpmaddwd ymm15, ymm14, ymm13\n",
                "vpaddd ymm",
                $d,
                ", ymm",
                $d,
                ", ymm15\n",
            )
        };
    }

    /// 16-bit pairs on a 16 × 6 tile (the f32 kernel's shape): each broadcast of B feeds two
    /// products. 16 rows × 6 columns × 2 k = 192 products a step.
    pub fn wide_16x6(a: &[u8], b: &[u8], reps: usize) {
        for _ in 0..reps {
            // SAFETY: as in `exact_sign`; BLOCKS * 4 / 3 steps of 64 bytes of A, 24 of B.
            unsafe {
                asm!(
                    "2:",
                    "vmovdqu ymm12, [{a}]",
                    "vmovdqu ymm13, [{a} + 32]",
                    wide_col2!(0, 6), wide_col2!(1, 7), wide_col2!(2, 8),
                    wide_col2!(3, 9), wide_col2!(4, 10), wide_col2!(5, 11),
                    "add {a}, 64",
                    "add {b}, 24",
                    "dec {n}",
                    "jnz 2b",
                    a = inout(reg) a.as_ptr() => _, b = inout(reg) b.as_ptr() => _,
                    n = inout(reg) BLOCKS * 4 / 3 => _,
                    out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
                    out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
                    out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
                    out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
                    options(nostack, readonly),
                );
            }
        }
    }

    /// Cycles a second, from a chain of dependent one-cycle additions.
    pub fn hz() -> f64 {
        let n: usize = 200_000_000;
        let t = Instant::now();
        // SAFETY: register arithmetic only.
        unsafe {
            asm!(
                "2:",
                "add {x}, 1", "add {x}, 1", "add {x}, 1", "add {x}, 1",
                "dec {n}",
                "jnz 2b",
                x = inout(reg) 0usize => _, n = inout(reg) n => _,
                options(nostack, nomem),
            );
        }
        4.0 * n as f64 / t.elapsed().as_secs_f64()
    }
}

#[cfg(target_arch = "x86_64")]
fn main() {
    if !std::is_x86_feature_detected!("avx2") {
        println!("this CPU has no AVX2: nothing to measure");
        return;
    }
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    // Small values: the saturating loop never saturates here, and the times do not depend on
    // the bytes. 64 KiB per operand, more than any loop reads.
    let a: Vec<u8> = (0..65_536u32).map(|i| (i % 7) as u8).collect();
    let b: Vec<u8> = (0..65_536u32).map(|i| (i % 5) as u8).collect();
    type Loop = fn(&[u8], &[u8], usize);
    let runs: [(&str, Loop); 4] = [
        (
            "exact, vpsignb + vpmaddubsw (vendored kernel, 8x8)",
            loops::exact_sign,
        ),
        (
            "saturating u8 x s8 vpmaddubsw (onnxruntime's kind, 4x16)",
            loops::saturating,
        ),
        ("exact, 16-bit pairs vpmaddwd (8x8)", loops::wide_8x8),
        ("exact, 16-bit pairs vpmaddwd (16x6)", loops::wide_16x6),
    ];
    let hz = (0..3).map(|_| loops::hz()).fold(0.0, f64::max);
    println!("clock {:.2} GHz (dependent additions)", hz / 1e9);
    let products = (reps * loops::BLOCKS * 256) as f64;
    for (name, f) in runs {
        let best = (0..3)
            .map(|_| {
                let t = std::time::Instant::now();
                f(&a, &b, reps);
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        println!(
            "{name:<60} {:6.1} G products/s  {:5.2} cycles / 256 products",
            products / best / 1e9,
            best * hz / (products / 256.0)
        );
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("int8_loops measures x86-64 loops only");
}
