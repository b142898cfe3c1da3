//! Times the band filters' design at common rates, then the level chain with octave bands
//! over a long stream, 100 s at a time (its cost must not grow with the stream).
fn main() {
    use soundsentry::levels::bands::BandScale;
    use soundsentry::levels::weighting::Weighting;
    let audio = soundsentry::noise::Noise::new(1).samples(48_000, 0.2);
    let mut cfg = soundsentry::levels::LevelsConfig {
        enabled: true,
        interval: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    cfg.bands = Some((BandScale::Octave, Weighting::Z));
    for scale in [BandScale::Octave, BandScale::Third] {
        for rate in [48_000, 44_100, 16_000] {
            let t = std::time::Instant::now();
            let bank = soundsentry::levels::bands::BandBank::new(scale, rate);
            println!(
                "{scale:?} at {rate} Hz: designed in {:.1} ms ({} bands)",
                t.elapsed().as_secs_f64() * 1e3,
                bank.bands().len()
            );
        }
    }
    let mut chain =
        soundsentry::levels::LevelChain::new(&cfg, 48_000, "b", "m", jiff::Timestamp::now())
            .expect("rate");
    for k in 0..20 {
        let t = std::time::Instant::now();
        for _ in 0..100 {
            chain.process(&audio, &mut |o| drop(std::hint::black_box(o)));
        }
        println!(
            "{k}: {:.2} ms per second of audio",
            t.elapsed().as_secs_f64() * 10.0
        );
    }
}
