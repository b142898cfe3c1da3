//! Our fbank against torchaudio (128 bins) and kaldi-native-fbank (80 bins) on committed fixtures.

use serde_json::Value;
use soundsentry::features::{Fbank, FbankConfig};

use crate::util::{fixture, max_abs_diff, read_npy};

/// The agreement the product promises with torchaudio, in the log-mel domain.
const TOLERANCE: f32 = 1e-3;
/// kaldi-native-fbank computes in float32: its own rounding moves quiet bins of loud
/// (×32768) frames by up to ~3e-3, so it is held to a looser bound (see the fixture tool).
const KNF_TOLERANCE: f32 = 5e-3;

#[test]
fn fbank_matches_references_on_every_fixture() {
    let cases: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("fbank/cases.json")).expect("cases.json"),
    )
    .expect("valid json");
    let cases = cases["cases"].as_array().expect("cases");
    assert!(cases.len() >= 20, "fixture set is incomplete");
    let mut worst = 0.0f32;
    for case in cases {
        let signal = case["signal"].as_str().expect("signal");
        let setting = case["setting"].as_str().expect("setting");
        let bins = case["mel_bins"].as_u64().expect("bins") as usize;
        let base = match setting {
            "ast" => FbankConfig::ast(),
            "beats" => FbankConfig::beats(),
            other => panic!("unknown setting {other}"),
        };
        let cfg = FbankConfig {
            mel_bins: bins,
            ..base
        };
        let (_, x) = read_npy(&format!("fbank/{signal}.wav.npy"));
        let (shape, expected) =
            read_npy(&format!("fbank/{}", case["file"].as_str().expect("file")));
        let mut fb = Fbank::new(&cfg).expect("config");
        let mut got = Vec::new();
        let frames = fb.process(&x, &mut got);
        assert_eq!(frames, shape[0], "{signal}/{setting}: frame count");
        let diff = max_abs_diff(&got, &expected);
        println!(
            "{signal:>14} {setting:>5} {bins:>3} bins {frames:>4} frames  max |diff| = {diff:.2e}"
        );
        if case["reference"] == "torchaudio" {
            assert!(
                diff <= TOLERANCE,
                "{signal}/{setting}: max |diff| {diff} > {TOLERANCE}"
            );
            worst = worst.max(diff);
        } else {
            assert!(
                diff <= KNF_TOLERANCE,
                "{signal}/knf: max |diff| {diff} > {KNF_TOLERANCE}"
            );
        }
    }
    println!("worst max |diff| against torchaudio: {worst:.2e}");
}
