//! Where a model load's peak memory is: resident size and its high-water mark after each
//! stage of the load (reading the file — decode and parse —, typing, declutter, attention
//! fusion, optimisation), the freed heap returned and the high-water mark reset between stages.
//!
//! `cargo run --release --example load_memory -- MODEL.onnx [FRAMES] [BINS]`; with
//! `LOAD_MEMORY_TRACT_READER=1` the file is read by tract's own reader, with glibc's default
//! allocator settings, instead of as `Model::load` reads it.

use tract_onnx::prelude::*;

fn stage(name: &str) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    };
    println!(
        "{name:<22} peak {:>6} MB   resident after {:>6} MB",
        field("VmHWM:"),
        field("VmRSS:")
    );
    soundsentry::memory::release_free_heap();
    // Linux: writing 5 to clear_refs resets the high-water mark.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() -> TractResult<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: load_memory MODEL.onnx [FRAMES] [BINS]"))?;
    let frames: usize = args.next().map_or(Ok(1024), |s| s.parse())?;
    let bins: usize = args.next().map_or(Ok(128), |s| s.parse())?;
    stage("start");
    // The allocator settings of a real load (src/memory.rs), unless measuring tract's reader.
    let _phase = std::env::var("LOAD_MEMORY_TRACT_READER")
        .is_err()
        .then(soundsentry::memory::LoadPhase::start);
    let onnx = tract_onnx::onnx().with_ignore_value_info(true);
    let model = if std::env::var("LOAD_MEMORY_TRACT_READER").is_ok() {
        let proto = onnx.proto_model_for_path(&path)?;
        stage("protobuf decoded");
        onnx.model_for_proto_model(&proto)?
    } else {
        soundsentry::model::read_onnx(&onnx, std::path::Path::new(&path))?
    };
    stage("read (decoded, parsed)");
    let model = model
        .with_input_fact(0, f32::fact([1, frames, bins]).into())?
        .into_typed()?;
    stage("typed");
    let mut model = soundsentry::model::declutter(model)?;
    stage("decluttered");
    soundsentry::model::rewrite_for_cpu(&mut model, soundsentry::model::Attention::Auto)?;
    stage("rewritten (attention, scaled casts, conv groups)");
    let _model = model.into_optimized()?;
    stage("optimised");
    Ok(())
}
