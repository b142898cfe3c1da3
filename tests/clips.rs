//! Event clips and privacy (issue 29): a scene with a jackhammer alone and a jackhammer with
//! speech over it; the clips of the first are the source's samples with their rolls, the
//! second is withheld (or muted where speech is), and speech never keeps a clip.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{bin, json_lines, repo, run_ok, TinyDisk};

const RATE: u32 = 16_000;
/// Where the speech over the jackhammer starts, s; it lasts 3.3 s.
const SPEECH_AT: f64 = 5.6;

fn demo() -> Vec<i16> {
    hound::WavReader::open(repo("samples/demo-20s.wav"))
        .expect("demo")
        .samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect()
}

/// demo-20s with the first 3.5 s of its jackhammer (13–18 s, left alone) copied over its
/// reversing beeps at 5.5 s, and its speech (1–4.3 s) added over that copy from 5.6 s.
fn scene(dir: &Path) -> (PathBuf, Vec<i16>) {
    let mut x = demo();
    let s = |t: f64| (t * f64::from(RATE)) as usize;
    let hammer: Vec<i16> = x[s(13.0)..s(16.5)].to_vec();
    x[s(5.5)..s(9.0)].copy_from_slice(&hammer);
    x[s(9.0)..s(13.0)].fill(0);
    let speech: Vec<i16> = x[s(1.0)..s(4.3)].to_vec();
    for (i, v) in speech.iter().enumerate() {
        let j = s(SPEECH_AT) + i;
        x[j] = (i32::from(x[j]) + i32::from(*v)).clamp(-32768, 32767) as i16;
    }
    let path = dir.join("scene.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("wav");
    for &v in &x {
        w.write_sample(v).expect("sample");
    }
    w.finalize().expect("wav");
    (path, x)
}

fn run(dir: &Path, wav: &Path, privacy: &str) -> (Vec<Value>, PathBuf) {
    let clips = dir.join(format!("clips-{privacy}"));
    let cfg = dir.join(format!("{privacy}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "sensor_id = \"clips\"\n[model]\npath = {:?}\n[source]\nkind = \"file\"\npath = {:?}\n\
             [analysis]\nhop = \"500ms\"\n[output]\nstdout = true\n\
             [clips]\ndir = {:?}\nlabels = [\"*\"]\npre_roll = \"1s\"\npost_roll = \"1s\"\n\
             [privacy]\nclips = {privacy:?}\n",
            repo("models/sitehome-tiny-ast"),
            wav,
            clips
        ),
    )
    .expect("config");
    let out = run_ok(bin().args(["run", "--config"]).arg(&cfg));
    (json_lines(&out), clips)
}

fn read(path: &Path) -> Vec<i16> {
    hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect()
}

/// Each ended event's (label, start s, end s, clip name).
fn ends(events: &[Value]) -> Vec<(String, f64, f64, String)> {
    events
        .iter()
        .filter(|e| e["state"] == "end")
        .map(|e| {
            (
                e["label"].as_str().expect("label").to_owned(),
                e["start_offset_s"].as_f64().expect("start"),
                e["end_offset_s"].as_f64().expect("end"),
                e["clip"]
                    .as_str()
                    .expect("every event keeps a clip")
                    .to_owned(),
            )
        })
        .collect()
}

#[test]
fn issue_29_clips_are_the_source_with_rolls_and_speech_is_never_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wav, source) = scene(dir.path());
    let at = |t: f64| (t * f64::from(RATE)).round() as usize;

    let (events, clips) = run(dir.path(), &wav, "withhold");
    let ended = ends(&events);
    println!("events: {ended:?}");
    let hammers: Vec<_> = ended.iter().filter(|e| e.0 == "Jackhammer").collect();
    let alone = hammers
        .iter()
        .find(|e| e.1 > 11.0)
        .unwrap_or_else(|| panic!("the jackhammer alone (13-18 s) was heard: {ended:?}"));
    let with_speech = hammers
        .iter()
        .find(|e| e.1 > 4.0 && e.1 < 9.0)
        .unwrap_or_else(|| panic!("the jackhammer under speech was heard: {ended:?}"));
    // the clip of the jackhammer alone: its event and a second either side, sample for sample
    let clip = read(&clips.join(&alone.3));
    // (cut where the recording ends)
    let (from, to) = (at(alone.1 - 1.0), at(alone.2 + 1.0).min(source.len()));
    assert!(
        clip.len().abs_diff(to - from) <= 2000,
        "{} samples for {from}..{to}",
        clip.len()
    );
    assert_eq!(
        clip[..],
        source[from..from + clip.len()],
        "the clip's samples"
    );
    // speech in it: not stored; and no clip of speech itself
    assert!(
        !clips.join(&with_speech.3).exists(),
        "a clip with speech was kept"
    );
    for e in ended.iter().filter(|e| e.0 == "Speech") {
        assert!(!clips.join(&e.3).exists(), "a speech clip was kept: {e:?}");
    }
    let kept: Vec<_> = std::fs::read_dir(&clips)
        .expect("clips")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(
        kept.iter()
            .all(|n| !n.to_string_lossy().ends_with(".partial")),
        "{kept:?}"
    );

    // mute: the jackhammer under speech is kept, silent wherever speech was heard
    let (events, clips) = run(dir.path(), &wav, "mute");
    let ended = ends(&events);
    let e = ended
        .iter()
        .find(|e| e.0 == "Jackhammer" && e.1 > 4.0 && e.1 < 9.0)
        .expect("the jackhammer under speech");
    let clip = read(&clips.join(&e.3));
    let from = at(e.1 - 1.0);
    // the speech (5.6-8.9 s) is muted in the clip; where it is silent, the source is not
    let muted: Vec<usize> = (0..clip.len())
        .filter(|&i| clip[i] == 0 && source[from + i] != 0)
        .collect();
    let speech = at(SPEECH_AT)..at(SPEECH_AT + 3.3);
    assert!(
        muted.len() >= speech.len() / 2,
        "{} samples muted of {}",
        muted.len(),
        speech.len()
    );
    assert!(
        speech
            .clone()
            .all(|i| i < from || i >= from + clip.len() || clip[i - from] == 0),
        "speech left audible in the clip"
    );
}

#[test]
fn issue_29_a_read_only_clip_folder_is_counted_and_the_run_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    // a file system mounted read-only (as an SD card the kernel remounted after errors):
    // permissions would not stop root, a read-only mount does
    let disk = TinyDisk::read_only();
    let clips = disk.0.path();
    let probe = std::fs::write(clips.join("probe"), b"x");
    assert!(
        probe.is_err(),
        "the clip folder should refuse writes: {probe:?}"
    );
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[model]\npath = {:?}\n[source]\nkind = \"file\"\npath = {:?}\n\
             [output]\nstdout = true\n[clips]\ndir = {:?}\nlabels = [\"*\"]\n",
            repo("models/sitehome-tiny-ast"),
            repo("samples/demo-20s.wav"),
            clips
        ),
    )
    .expect("config");
    let out = run_ok(bin().args(["run", "--config"]).arg(&cfg));
    let events = json_lines(&out);
    assert!(
        events.iter().any(|e| e["state"] == "end"),
        "the run went on"
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("clip not written"), "{log}");
    assert!(
        log.lines().any(|l| l.contains(" clips")
            && l.contains("written_total=0")
            && !l.contains("failed_total=0")),
        "{log}"
    );
}
