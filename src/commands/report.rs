//! `soundsentry report`: daily site reports from the history, from a daemon's JSON lines, or
//! from a recording analysed on the spot.

use std::path::Path;

use anyhow::Context;

use crate::archive::store;
use crate::cli::ReportArgs;
use crate::report::{periods::eu_periods, ReportSettings};

/// `soundsentry report`.
pub fn report(args: &ReportArgs) -> anyhow::Result<()> {
    let cfg = args
        .config
        .as_deref()
        .map(crate::config::Config::load)
        .transpose()?;
    let settings = match &cfg {
        Some(c) => ReportSettings {
            sensor: c.sensor_id.clone(),
            tz: c.levels.timezone.clone(),
            limits: c.levels.limits.clone(),
            periods: c.levels.periods.clone(),
            night_lamax_db: c.levels.night_lamax_db,
        },
        None => ReportSettings {
            sensor: "soundsentry".into(),
            tz: jiff::tz::TimeZone::system(),
            limits: Vec::new(),
            periods: eu_periods(),
            night_lamax_db: None,
        },
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("--out {}", args.out.display()))?;
    let (db, from_data) = if let Some(lines) = &args.lines {
        let text = std::fs::read_to_string(lines)
            .with_context(|| format!("--lines {}", lines.display()))?;
        let mut db = store::memory()?;
        let (l, e) = store::import(&mut db, &text)
            .with_context(|| format!("--lines {}", lines.display()))?;
        eprintln!("{}: {l} level reports, {e} event messages", lines.display());
        (db, true)
    } else if let Some(file) = &args.file {
        let (config, cfg) = (args.config.as_deref(), cfg.as_ref());
        let (Some(config), Some(_)) = (config, cfg) else {
            anyhow::bail!("--file needs --config (the model, levels and limits to use)");
        };
        let history = args.out.join("history.sqlite");
        analyse(config, file, args.start.as_deref(), &history)?;
        (store::open_read_only(&history)?, true)
    } else {
        let path = args
            .history
            .clone()
            .or_else(|| cfg.as_ref().and_then(|c| c.history.path.clone()))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no history to report: give --config with a [history] path, --history FILE, \
                     --lines FILE or --file RECORDING"
                )
            })?;
        (store::open_read_only(&path)?, false)
    };
    let today = jiff::Zoned::now()
        .with_time_zone(settings.tz.clone())
        .date();
    let span = if from_data {
        data_days(&db, &settings.tz)?
    } else {
        None
    };
    let default = span.unwrap_or((today.yesterday()?, today.yesterday()?));
    let from = match &args.from {
        Some(s) => parse_day(s, today).with_context(|| format!("--from {s}"))?,
        None if args.to.is_some() && !from_data => {
            parse_day(args.to.as_deref().unwrap_or(""), today)?
        }
        None => default.0,
    };
    let to = match &args.to {
        Some(s) => parse_day(s, today).with_context(|| format!("--to {s}"))?,
        None if args.from.is_some() && !from_data => today.max(from),
        None => default.1.max(from),
    };
    let written = crate::report::write(&db, from, to, &settings, &args.out)?;
    for dir in &written {
        println!("{}", dir.join("report.html").display());
    }
    println!("{}", args.out.join("index.html").display());
    Ok(())
}

/// Runs the daemon's analysis over a recording into a history file.
fn analyse(config: &Path, file: &Path, start: Option<&str>, history: &Path) -> anyhow::Result<()> {
    let (mut cfg, model, watches) = super::load_all(config, &crate::config::Overrides::default())?;
    cfg.source = crate::config::SourceConfig::File {
        path: file.to_owned(),
        realtime: false,
        chunk: std::time::Duration::from_millis(100),
    };
    cfg.levels.enabled = true;
    cfg.mqtt.url = None;
    cfg.http.listen = None;
    cfg.clips.dir = None;
    cfg.history.path = Some(history.to_owned());
    if history.exists() {
        std::fs::remove_file(history).with_context(|| history.display().to_string())?;
    }
    let start = start
        .map(|s| s.parse::<jiff::Timestamp>())
        .transpose()
        .context("--start: an RFC 3339 time such as 2026-12-01T07:00:00+01:00")?;
    let control = crate::pipeline::Control {
        start,
        ..Default::default()
    };
    let stats = crate::pipeline::run(&cfg, &model, watches, &control, std::io::sink())?;
    eprintln!(
        "{}: {:.1} s analysed, {} events",
        file.display(),
        stats.audio_s,
        stats.events_total
    );
    Ok(())
}

/// The first and last local days with level reports or events.
fn data_days(
    db: &rusqlite::Connection,
    tz: &jiff::tz::TimeZone,
) -> anyhow::Result<Option<(jiff::civil::Date, jiff::civil::Date)>> {
    let (lo, hi): (Option<f64>, Option<f64>) = db.query_row(
        "SELECT MIN(t), MAX(t) FROM (SELECT start_unix AS t FROM levels \
         UNION ALL SELECT start_unix FROM events)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let day = |t: f64| crate::report::zoned(t, tz).date();
    Ok(lo.zip(hi).map(|(a, b)| (day(a), day(b))))
}

/// YYYY-MM-DD, `today`, `yesterday` or `-Nd`.
fn parse_day(s: &str, today: jiff::civil::Date) -> anyhow::Result<jiff::civil::Date> {
    match s {
        "today" => Ok(today),
        "yesterday" => Ok(today.yesterday()?),
        _ => {
            if let Some(n) = s.strip_prefix('-').and_then(|r| r.strip_suffix('d')) {
                let n: i64 = n.parse().context("-Nd: N whole days")?;
                return Ok(today.checked_sub(jiff::Span::new().days(n))?);
            }
            s.parse::<jiff::civil::Date>()
                .map_err(|_| anyhow::anyhow!("{s:?}: a day as YYYY-MM-DD, today, yesterday or -Nd"))
        }
    }
}
