//! This CPU's physical limits, for the comparison harness: f32 FMA and int8 dot-product
//! throughput and memory bandwidth, on 1 thread and on N.
//!
//! `cargo run --release --example peak [THREADS]` prints one JSON line: `f32_gflops`,
//! `int8_gops` (multiply-adds × 2 a second) and `mem_gbs` (read bandwidth of a buffer far
//! larger than the caches), each for 1 thread (`_1t`) and THREADS threads (`_nt`), and which
//! instructions were used (`isa`). The loops keep enough independent accumulators to cover the
//! instructions' latency, so their rates are what the execution units allow, not a model's.

use std::time::Instant;

/// Work each thread does in one measurement; the best of three is kept.
const ITERS: u64 = 20_000_000;

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let (isa, f32_kernel, int8_kernel) = kernels();
    let flops = |t| best_rate(t, |_| f32_kernel(ITERS)) / 1e9;
    let int8 = |t| best_rate(t, |_| int8_kernel(ITERS)) / 1e9;
    let buffer: Vec<u64> = (0..(256usize << 20) / 8).map(|i| i as u64).collect();
    let mem = |t: usize| {
        let chunk = buffer.len() / t;
        best_rate(t, |i| read(&buffer[i * chunk..(i + 1) * chunk])) / 1e9
    };
    println!(
        "{}",
        serde_json::json!({
            "isa": isa, "threads": threads,
            "f32_gflops_1t": flops(1), "f32_gflops_nt": flops(threads),
            "int8_gops_1t": int8(1), "int8_gops_nt": int8(threads),
            "mem_gbs_1t": mem(1), "mem_gbs_nt": mem(threads),
        })
    );
}

/// Runs `work` (returning the operations or bytes it did) on `threads` threads at once;
/// the best of three rates, per second, all threads together.
fn best_rate(threads: usize, work: impl Fn(usize) -> f64 + Sync) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            let done: f64 = std::thread::scope(|s| {
                let work = &work;
                let handles: Vec<_> = (0..threads).map(|i| s.spawn(move || work(i))).collect();
                handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
            });
            done / t.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

/// Reads every word of `data` (summed, so the reads happen); returns the bytes read.
fn read(data: &[u64]) -> f64 {
    let sum = data
        .chunks_exact(8)
        .fold([0u64; 8], |mut acc, c| {
            for (a, x) in acc.iter_mut().zip(c) {
                *a = a.wrapping_add(*x);
            }
            acc
        })
        .iter()
        .fold(0u64, |a, x| a.wrapping_add(*x));
    std::hint::black_box(sum);
    (data.len() * 8) as f64
}

type Kernel = fn(u64) -> f64;

#[cfg(target_arch = "x86_64")]
fn kernels() -> (&'static str, Kernel, Kernel) {
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        (
            "avx2+fma (int8: vpmaddubsw + vpmaddwd)",
            x86::f32_fma,
            x86::int8_dot,
        )
    } else {
        ("scalar", scalar_f32, scalar_int8)
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn kernels() -> (&'static str, Kernel, Kernel) {
    ("scalar", scalar_f32, scalar_int8)
}

fn scalar_f32(iters: u64) -> f64 {
    let mut acc = [1.0f32; 8];
    for _ in 0..iters {
        for a in &mut acc {
            *a = a.mul_add(0.999_999, 1e-7);
        }
    }
    std::hint::black_box(acc);
    (iters * 8 * 2) as f64
}

fn scalar_int8(iters: u64) -> f64 {
    let mut acc = [0i32; 8];
    let (a, b) = (std::hint::black_box(3i8), std::hint::black_box(5u8));
    for _ in 0..iters {
        for x in &mut acc {
            *x = x.wrapping_add(i32::from(a) * i32::from(b));
        }
    }
    std::hint::black_box(acc);
    (iters * 8 * 2) as f64
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // intrinsics behind runtime feature detection
mod x86 {
    use std::arch::x86_64::*;

    /// Ten independent FMA chains of 8 lanes: flops = iters × 10 × 8 × 2.
    pub fn f32_fma(iters: u64) -> f64 {
        // SAFETY: called only where AVX2 and FMA were detected.
        unsafe { f32_fma_avx2(iters) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn f32_fma_avx2(iters: u64) -> f64 {
        let m = _mm256_set1_ps(0.999_999);
        let c = _mm256_set1_ps(1e-7);
        let mut acc = [_mm256_set1_ps(1.0); 10];
        for _ in 0..iters {
            for a in &mut acc {
                *a = _mm256_fmadd_ps(*a, m, c);
            }
        }
        std::hint::black_box(acc);
        (iters * 10 * 8 * 2) as f64
    }

    /// Twelve chains of the AVX2 int8 dot product (u8 × i8 pairs to i16, then to i32), each
    /// step's u8 operand the chain's accumulator (so no step can be hoisted): 32
    /// multiply-adds an instruction pair, ops = iters × 12 × 32 × 2.
    pub fn int8_dot(iters: u64) -> f64 {
        // SAFETY: called only where AVX2 was detected.
        unsafe { int8_dot_avx2(iters) }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn int8_dot_avx2(iters: u64) -> f64 {
        let b = _mm256_set1_epi8(5);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_set1_epi8(3); 12];
        for _ in 0..iters {
            for x in &mut acc {
                let p = _mm256_maddubs_epi16(*x, b);
                *x = _mm256_add_epi32(*x, _mm256_madd_epi16(p, ones));
            }
        }
        std::hint::black_box(acc);
        (iters * 12 * 32 * 2) as f64
    }
}
