//! Which CPU kernels run: the best this CPU has, or a narrower set (`model.kernels`,
//! `SOUNDSENTRY_KERNELS`) so that the paths of other CPUs are measured and tested here.

use std::sync::OnceLock;

use tract_linalg::isa::{Isa, IsaSet};

/// The kernels tract and soundsentry's own code may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    /// Everything this CPU has (AVX-512, VNNI, AMX, BF16 where present).
    #[default]
    Auto,
    /// At most AVX2 and FMA, as on a CPU without AVX-512 or AVX-VNNI (most mini PCs, NAS
    /// boxes, AMD Zen 3 and older).
    Avx2,
    /// No vector extension past the architecture's baseline (SSE2 on x86-64).
    Generic,
}

impl std::str::FromStr for Kernels {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "avx2" => Ok(Self::Avx2),
            "generic" => Ok(Self::Generic),
            other => Err(format!(
                "unknown kernels {other:?}: use \"auto\", \"avx2\" or \"generic\""
            )),
        }
    }
}

impl std::fmt::Display for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Avx2 => "avx2",
            Self::Generic => "generic",
        })
    }
}

/// The environment variable that chooses the kernels where no configuration does (`classify`,
/// benchmarks, tests); `model.kernels` wins over it.
pub const ENV: &str = "SOUNDSENTRY_KERNELS";

/// Features past AVX2 + FMA.
const PAST_AVX2: [Isa; 6] = [
    Isa::X86_64Avx512f,
    Isa::X86_64Avx512Vnni,
    Isa::X86_64Avx512Fp16,
    Isa::X86_64AvxVnni,
    Isa::X86_64AmxInt8,
    Isa::X86_64AmxBf16,
];
/// Features past the x86-64 baseline, besides those.
const PAST_SSE2: [Isa; 4] = [
    Isa::X86_64Avx,
    Isa::X86_64Avx2,
    Isa::X86_64Fma,
    Isa::X86_64F16c,
];

static CHOSEN: OnceLock<Kernels> = OnceLock::new();

/// Fixes the kernels of this process. It must come before the first model is loaded (tract
/// reads the instruction set once); asking for another choice later, or for kernels this CPU
/// cannot run, is an error.
pub fn select(kernels: Kernels) -> Result<(), String> {
    if let Some(&done) = CHOSEN.get() {
        return match done == kernels {
            true => Ok(()),
            false => Err(format!(
                "kernels are already \"{done}\" in this process; \"{kernels}\" cannot follow"
            )),
        };
    }
    let removed: Vec<Isa> = match kernels {
        Kernels::Auto => Vec::new(),
        Kernels::Avx2 => PAST_AVX2.to_vec(),
        Kernels::Generic => PAST_AVX2.iter().chain(&PAST_SSE2).copied().collect(),
    };
    if kernels == Kernels::Avx2 && !host_has_avx2_fma() {
        return Err("kernels = \"avx2\": this CPU has no AVX2 and FMA".into());
    }
    if !removed.is_empty() && cfg!(target_arch = "x86_64") {
        // tract's own knob, edited: the user's TRACT_CPU_ISA (if any) first, then ours.
        let user = std::env::var("TRACT_CPU_ISA").unwrap_or_default();
        let ours: Vec<String> = removed.iter().map(|i| format!("-{}", i.name())).collect();
        let spec = [user, ours.join(",")]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(",");
        tract_linalg::knobs::TRACT_CPU_ISA.set(Some(spec));
    }
    let native = tract_linalg::isa::native();
    if removed.iter().any(|&i| native.has(i)) {
        return Err(format!(
            "kernels = \"{kernels}\" came after tract read this CPU's instruction set ({native:?})"
        ));
    }
    CHOSEN
        .set(kernels)
        .map_err(|_| "kernels chosen twice at once".to_string())
}

/// The kernels of this process: those [`select`]ed, else `SOUNDSENTRY_KERNELS`'s (an invalid
/// value is warned about and ignored), else `auto`.
pub fn chosen() -> Kernels {
    if let Some(&k) = CHOSEN.get() {
        return k;
    }
    let from_env = std::env::var(ENV).ok().and_then(|v| match v.parse() {
        Ok(k) => Some(k),
        Err(e) => {
            tracing::warn!("{ENV}: {e}; using \"auto\"");
            None
        }
    });
    let k = from_env.unwrap_or_default();
    if let Err(e) = select(k) {
        tracing::warn!("{ENV}: {e}; using \"auto\"");
        let _ = CHOSEN.set(Kernels::Auto);
    }
    CHOSEN.get().copied().unwrap_or_default()
}

/// Whether soundsentry's own AVX-512 code may run (the CPU has it and the kernels allow it).
pub fn avx512f() -> bool {
    chosen() == Kernels::Auto && x86_has("avx512f")
}

/// Whether soundsentry's own AVX-512 BF16 code may run.
pub fn avx512_bf16() -> bool {
    avx512f() && x86_has("avx512bw") && x86_has("avx512bf16")
}

/// Whether soundsentry's own AVX2 + FMA code may run.
pub fn avx2_fma() -> bool {
    chosen() != Kernels::Generic && host_has_avx2_fma()
}

fn host_has_avx2_fma() -> bool {
    x86_has("avx2") && x86_has("fma")
}

#[cfg(target_arch = "x86_64")]
fn x86_has(feature: &str) -> bool {
    match feature {
        "avx2" => std::is_x86_feature_detected!("avx2"),
        "fma" => std::is_x86_feature_detected!("fma"),
        "avx512f" => std::is_x86_feature_detected!("avx512f"),
        "avx512bw" => std::is_x86_feature_detected!("avx512bw"),
        "avx512bf16" => std::is_x86_feature_detected!("avx512bf16"),
        _ => false,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn x86_has(_: &str) -> bool {
    false
}

/// The instruction set the kernels are picked from, as tract reads it (after `select`), e.g.
/// "x86_64,avx,avx2,fma,f16c": what a benchmark figure or a warning names.
pub fn isa() -> String {
    let _ = chosen();
    format!("{:?}", tract_linalg::isa::native())
}

/// Why an int8 model is likely slower than its fp32 original here, if it is: on x86-64 int8
/// pays with a dot-product kernel (AVX-512 VNNI, AVX-VNNI or AMX) and with the AVX2 kernel
/// (full-size AST and BEATs int8 0.80-0.82x fp32's time, the default model about fp32's;
/// BENCHMARKS.md); with neither, on the generic kernels, int8 ran 1.2-1.8x fp32's time.
/// Not measured on arm64, so never said there.
pub fn int8_warning() -> Option<String> {
    if !cfg!(target_arch = "x86_64") {
        return None;
    }
    let set = native();
    let fast = [
        Isa::X86_64Avx512Vnni,
        Isa::X86_64AvxVnni,
        Isa::X86_64AmxInt8,
    ];
    if fast.iter().any(|&i| set.has(i)) || avx2_fma() {
        return None;
    }
    Some(format!(
        "this model is int8, but the kernels here ({}) have neither an int8 dot product \
         (VNNI or AMX) nor AVX2: int8 ran 1.2-1.8x fp32's time on such kernels \
         (BENCHMARKS.md); the fp32 model is likely faster on this CPU",
        isa()
    ))
}

/// The set `isa` is read from, for checks.
pub fn native() -> IsaSet {
    let _ = chosen();
    tract_linalg::isa::native()
}

#[cfg(test)]
mod tests {
    use super::Kernels;

    #[test]
    fn kernels_parse_and_print_as_configured() {
        for k in [Kernels::Auto, Kernels::Avx2, Kernels::Generic] {
            assert_eq!(k.to_string().parse::<Kernels>(), Ok(k));
        }
        let e = "avx512".parse::<Kernels>().expect_err("not a choice");
        assert!(e.contains("\"auto\", \"avx2\" or \"generic\""), "{e}");
    }
}
