//! A day's report as files: `report.html` (self-contained: styles inline, charts as embedded
//! PNG), the charts as PNG beside it, and CSV tables; and the `index.html` of the days.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine;

use super::{zoned, Day, ReportSettings};
use crate::plot::site::{LevelHistory, Spectrum, Timeline};

/// Writes `day`'s folder.
pub fn write_day(day: &Day, settings: &ReportSettings, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let tz = &settings.tz;
    let hour = |t: f64| {
        let z = zoned(t, tz);
        f64::from(z.hour()) + f64::from(z.minute()) / 60.0 + f64::from(z.second()) / 3600.0
    };
    // an interval that ends at the next midnight ends at hour 24
    let hour_end = |t: f64| if t >= day.end - 1e-6 { 24.0 } else { hour(t) };
    let unit = unit(day);
    let mut charts = Vec::new();
    let history = LevelHistory {
        title: format!("{} — {}: sound levels", settings.sensor, day.date),
        unit: unit.into(),
        laeq: day
            .levels
            .iter()
            .map(|r| (hour(r.start), hour_end(r.end), r.laeq))
            .collect(),
        lamax: day
            .levels
            .iter()
            .map(|r| (hour(r.start), r.lamax))
            .collect(),
        limits: settings
            .limits
            .iter()
            .filter(|l| {
                matches!(
                    l.metric,
                    crate::levels::Metric::Laeq | crate::levels::Metric::Lamax
                )
            })
            .map(|l| (l.name.clone(), l.threshold_db))
            .collect(),
        over: day
            .verdicts
            .iter()
            .filter(|v| v.word() == "over")
            .map(|v| (hour(v.start), hour_end(v.end)))
            .collect(),
    };
    charts.push(chart(
        dir,
        "levels.png",
        &history,
        (1100, 440),
        "LAeq and LAFmax over the day",
    )?);
    let loudest = loudest_quarters(day, 3);
    if let Some((_, first)) = loudest.first() {
        let spectrum = Spectrum {
            title: format!(
                "{} — {}: band levels of the loudest quarter-hours",
                settings.sensor, day.date
            ),
            unit: unit.into(),
            bands: first.iter().map(|b| b.0.clone()).collect(),
            series: loudest
                .iter()
                .map(|(t, b)| {
                    (
                        format!("{} (LAeq 15 min)", clock(*t, tz)),
                        b.iter().map(|x| x.1).collect(),
                    )
                })
                .collect(),
        };
        charts.push(chart(
            dir,
            "spectrum.png",
            &spectrum,
            (1100, 400),
            "Band spectrum of the loudest quarter-hours",
        )?);
    }
    let mut labels: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for e in day.events.iter().filter(|e| e.kind != "limit") {
        let span = (
            hour(e.start.max(day.start)),
            hour_end(e.end.unwrap_or(day.end).min(day.end)),
        );
        match labels.iter_mut().find(|l| l.0 == e.label) {
            Some(l) => l.1.push(span),
            None => labels.push((e.label.clone(), vec![span])),
        }
    }
    let timeline = Timeline {
        title: format!("{} — {}: sound events", settings.sensor, day.date),
        rows: labels,
    };
    charts.push(chart(
        dir,
        "events.png",
        &timeline,
        timeline.size(),
        "Sound events on the day",
    )?);
    write_csvs(day, tz, dir)?;
    let mut s = csv::Writer::from_path(dir.join("spectrum.csv"))?;
    if let Some((_, first)) = loudest.first() {
        let head = ["from".to_owned()]
            .into_iter()
            .chain(first.iter().map(|b| b.0.clone()));
        s.write_record(head)?;
        for (t, bands) in &loudest {
            let row = [zoned(*t, tz).to_string()]
                .into_iter()
                .chain(bands.iter().map(|b| format!("{:.2}", b.1)));
            s.write_record(row)?;
        }
    }
    s.flush()?;
    let html = html(day, settings, &charts);
    std::fs::write(dir.join("report.html"), html)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    Ok(())
}

/// "dB" when calibrated, else "dBFS".
fn unit(day: &Day) -> &'static str {
    if day.calibration.1 {
        "dB"
    } else {
        "dBFS"
    }
}

/// (start, band levels) of the `n` loudest quarter-hours that have bands.
fn loudest_quarters(day: &Day, n: usize) -> Vec<(f64, Vec<(String, f64)>)> {
    let mut q: Vec<(f64, f64)> = day
        .quarters
        .iter()
        .filter_map(|(t, f)| Some((*t, f.as_ref()?.laeq)))
        .collect();
    q.sort_by(|a, b| b.1.total_cmp(&a.1));
    q.into_iter()
        .filter_map(|(t, _)| {
            let rows: Vec<_> = day
                .levels
                .iter()
                .filter(|r| r.start >= t && r.start < t + 900.0 && !r.bands.is_empty())
                .collect();
            let first = rows.first()?;
            let bands = first
                .bands
                .iter()
                .enumerate()
                .map(|(i, (name, _))| {
                    let v = super::data::energy_mean(
                        rows.iter()
                            .filter_map(|r| Some((r.bands.get(i)?.1, r.seconds))),
                    );
                    (name.clone(), v.unwrap_or(f64::NAN))
                })
                .collect();
            Some((t, bands))
        })
        .take(n)
        .collect()
}

/// Draws a chart into `dir/name` and returns (file name, caption, data URI).
fn chart(
    dir: &Path,
    name: &str,
    figure: &impl crate::plot::Figure,
    size: (u32, u32),
    caption: &str,
) -> anyhow::Result<(String, String, String)> {
    let path = dir.join(name);
    crate::plot::save(figure, &path, size)?;
    let bytes = std::fs::read(&path)?;
    let uri = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    );
    Ok((name.to_owned(), caption.to_owned(), uri))
}

/// Local "HH:MM".
fn clock(t: f64, tz: &jiff::tz::TimeZone) -> String {
    let z = zoned(t, tz);
    format!("{:02}:{:02}", z.hour(), z.minute())
}

fn db(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.1}"))
}

/// HTML-escapes text.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(day: &Day, settings: &ReportSettings, charts: &[(String, String, String)]) -> String {
    let tz = &settings.tz;
    let u = unit(day);
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{s} — noise report {d}</title><style>\
         body{{font-family:sans-serif;max-width:1150px;margin:1em auto;padding:0 1em;color:#222}}\
         table{{border-collapse:collapse;margin:.5em 0 1.5em}}td,th{{border:1px solid #ccc;\
         padding:.2em .6em;text-align:right}}th{{background:#f3f3f3}}td.l,th.l{{text-align:left}}\
         .over{{background:#fdd}}img{{max-width:100%;border:1px solid #eee}}\
         details{{margin-bottom:1em}}</style></head><body>\
         <h1>Noise report — {s}, {d}</h1>",
        s = esc(&settings.sensor),
        d = day.date
    );
    let (offset, calibrated) = day.calibration;
    let _ = write!(
        h,
        "<p>Time zone {tz}. Levels in {u}: {cal}. Model {m}. Generated by soundsentry {v}.</p>",
        tz = esc(tz.iana_name().unwrap_or("UTC")),
        cal = match (calibrated, offset) {
            (true, Some(o)) => format!("calibrated, offset {o:+.2} dB"),
            (true, None) => "calibrated".into(),
            (false, _) => "not calibrated (dB re full scale; set [levels] offset_db)".into(),
        },
        m = esc(day.model.as_deref().unwrap_or("unknown")),
        v = env!("CARGO_PKG_VERSION"),
    );
    let total = day.total;
    let _ = write!(
        h,
        "<h2>The day</h2><table><tr><th>LAeq</th><th>LAFmax</th><th>LA10</th><th>LA90</th>\
         <th>measured</th></tr><tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        db(total.map(|f| f.laeq)),
        db(total.map(|f| f.lamax)),
        db(total.map(|f| f.la10)),
        db(total.map(|f| f.la90)),
        total.map_or("nothing".into(), |f| format!("{:.1} h", f.seconds / 3600.0)),
    );
    h.push_str("<table><tr>");
    for (name, _, _) in &day.periods.laeq {
        let _ = write!(h, "<th>LAeq {}</th>", esc(name));
    }
    h.push_str("<th>Lden</th><th>Ldn</th>");
    if let Some((t, _)) = day.periods.night_events {
        let _ = write!(h, "<th>night LAFmax &gt; {t:.0} {u}</th>");
    }
    h.push_str("</tr><tr>");
    for (_, v, _) in &day.periods.laeq {
        let _ = write!(h, "<td>{}</td>", db(*v));
    }
    let _ = write!(
        h,
        "<td>{}</td><td>{}</td>",
        db(day.periods.lden),
        db(day.periods.ldn)
    );
    if let Some((_, n)) = day.periods.night_events {
        let _ = write!(h, "<td>{n}</td>");
    }
    h.push_str("</tr></table>");
    for (name, caption, uri) in charts {
        let _ = write!(
            h,
            "<figure><img src=\"{uri}\" alt=\"{c}\" data-chart=\"{name}\"><figcaption>{c}</figcaption></figure>",
            c = esc(caption)
        );
    }
    h.push_str("<h2>Limits</h2>");
    if day.verdicts.is_empty() {
        h.push_str("<p>No limit rules.</p>");
    } else {
        let over = day.verdicts.iter().filter(|v| v.word() == "over").count();
        let _ = write!(
            h,
            "<p>{over} of {} periods over their limit.</p>",
            day.verdicts.len()
        );
        h.push_str(
            "<table id=\"limits\"><tr><th class=\"l\">rule</th><th>from</th><th>to</th>\
             <th>value</th><th>limit</th><th class=\"l\">verdict</th></tr>",
        );
        for v in &day.verdicts {
            let _ = write!(
                h,
                "<tr{cls}><td class=\"l\">{r}</td><td>{a}</td><td>{b}</td><td>{val}</td>\
                 <td>{t:.1}</td><td class=\"l\">{w}</td></tr>",
                cls = if v.word() == "over" {
                    " class=\"over\""
                } else {
                    ""
                },
                r = esc(&v.rule),
                a = clock(v.start, tz),
                b = clock(v.end, tz),
                val = db(v.value),
                t = v.threshold,
                w = v.word()
            );
        }
        h.push_str("</table>");
    }
    h.push_str(
        "<h2>Hours</h2><table id=\"hours\"><tr><th>hour</th><th>LAeq</th><th>LAFmax</th>\
         <th>LA10</th><th>LA90</th><th>measured, min</th></tr>",
    );
    for (t, f) in &day.hours {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            clock(*t, tz),
            db(f.map(|f| f.laeq)),
            db(f.map(|f| f.lamax)),
            db(f.map(|f| f.la10)),
            db(f.map(|f| f.la90)),
            f.map_or("0".into(), |f| format!("{:.0}", f.seconds / 60.0))
        );
    }
    h.push_str("</table><details><summary>15-minute LAeq</summary><table id=\"quarters\"><tr><th>from</th><th>LAeq</th><th>LAFmax</th></tr>");
    for (t, f) in &day.quarters {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            clock(*t, tz),
            db(f.map(|f| f.laeq)),
            db(f.map(|f| f.lamax))
        );
    }
    h.push_str("</table></details><h2>Events</h2>");
    if day.events.is_empty() {
        h.push_str("<p>No events.</p>");
    } else {
        h.push_str("<table id=\"events\"><tr><th class=\"l\">label</th><th class=\"l\">kind</th><th>start</th><th>end</th></tr>");
        for e in &day.events {
            let _ = write!(
                h,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.label),
                esc(&e.kind),
                clock(e.start, tz),
                e.end.map_or("open".into(), |t| clock(t, tz))
            );
        }
        h.push_str("</table>");
    }
    h.push_str("<h2>Gaps</h2>");
    if day.gaps.is_empty() {
        h.push_str("<p>None: measured throughout.</p>");
    } else {
        h.push_str("<table id=\"gaps\"><tr><th>from</th><th>to</th><th class=\"l\">why</th></tr>");
        for g in &day.gaps {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
                clock(g.start, tz),
                if g.end >= day.end - 1e-6 {
                    "24:00".into()
                } else {
                    clock(g.end, tz)
                },
                esc(&g.why)
            );
        }
        h.push_str("</table>");
    }
    if !day.restarts.is_empty() {
        let times: Vec<String> = day.restarts.iter().map(|r| clock(r.0, tz)).collect();
        let _ = write!(
            h,
            "<p id=\"restarts\">The audio source restarted {} times (noted at {}): a few \
             seconds of audio are missing at each.</p>",
            day.restarts.len(),
            times.join(", ")
        );
    }
    h.push_str("<p>LA10 and LA90 of an hour or the day are the levels exceeded 10 % and 90 % of the time by the report intervals' LAeq values.</p></body></html>\n");
    h
}

fn write_csvs(day: &Day, tz: &jiff::tz::TimeZone, dir: &Path) -> anyhow::Result<()> {
    let f = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.2}"));
    let mut hours = csv::Writer::from_path(dir.join("hours.csv"))?;
    hours.write_record(["from", "laeq", "lafmax", "la10", "la90", "measured_s"])?;
    for (t, x) in &day.hours {
        hours.write_record([
            zoned(*t, tz).to_string(),
            f(x.map(|x| x.laeq)),
            f(x.map(|x| x.lamax)),
            f(x.map(|x| x.la10)),
            f(x.map(|x| x.la90)),
            f(x.map(|x| x.seconds)),
        ])?;
    }
    hours.flush()?;
    let mut q = csv::Writer::from_path(dir.join("quarters.csv"))?;
    q.write_record(["from", "laeq", "lafmax", "measured_s"])?;
    for (t, x) in &day.quarters {
        q.write_record([
            zoned(*t, tz).to_string(),
            f(x.map(|x| x.laeq)),
            f(x.map(|x| x.lamax)),
            f(x.map(|x| x.seconds)),
        ])?;
    }
    q.flush()?;
    let mut l = csv::Writer::from_path(dir.join("limits.csv"))?;
    l.write_record([
        "rule",
        "from",
        "to",
        "value",
        "limit",
        "verdict",
        "measured_s",
    ])?;
    for v in &day.verdicts {
        l.write_record([
            v.rule.clone(),
            zoned(v.start, tz).to_string(),
            zoned(v.end, tz).to_string(),
            f(v.value),
            format!("{:.2}", v.threshold),
            v.word().into(),
            format!("{:.1}", v.seconds),
        ])?;
    }
    l.flush()?;
    let mut p = csv::Writer::from_path(dir.join("periods.csv"))?;
    p.write_record(["period", "laeq", "measured_s"])?;
    for (name, v, s) in &day.periods.laeq {
        p.write_record([name.clone(), f(*v), format!("{s:.1}")])?;
    }
    p.write_record(["Lden".into(), f(day.periods.lden), String::new()])?;
    p.write_record(["Ldn".into(), f(day.periods.ldn), String::new()])?;
    if let Some((t, n)) = day.periods.night_events {
        p.write_record([
            format!("night LAFmax events > {t}"),
            n.to_string(),
            String::new(),
        ])?;
    }
    p.flush()?;
    let mut e = csv::Writer::from_path(dir.join("events.csv"))?;
    e.write_record(["id", "kind", "label", "start", "end"])?;
    for ev in &day.events {
        e.write_record([
            ev.id.clone(),
            ev.kind.clone(),
            ev.label.clone(),
            zoned(ev.start, tz).to_string(),
            ev.end.map_or(String::new(), |t| zoned(t, tz).to_string()),
        ])?;
    }
    e.flush()?;
    Ok(())
}

/// `index.html`: a row per day with its LAeq, Lden and the periods over a limit.
pub fn write_index(days: &[Day], settings: &ReportSettings, out: &Path) -> anyhow::Result<()> {
    let mut h = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{s} — noise reports</title>\
         <style>body{{font-family:sans-serif;max-width:900px;margin:1em auto;padding:0 1em}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:right}}\
         </style></head><body><h1>Noise reports — {s}</h1><table><tr><th>day</th><th>LAeq</th>\
         <th>LAFmax</th><th>Lden</th><th>periods over a limit</th><th>measured, h</th></tr>",
        s = esc(&settings.sensor)
    );
    for d in days {
        let over = d.verdicts.iter().filter(|v| v.word() == "over").count();
        let _ = write!(
            h,
            "<tr><td><a href=\"{date}/report.html\">{date}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{over}</td><td>{:.1}</td></tr>",
            db(d.total.map(|f| f.laeq)),
            db(d.total.map(|f| f.lamax)),
            db(d.periods.lden),
            d.total.map_or(0.0, |f| f.seconds / 3600.0),
            date = d.date
        );
    }
    h.push_str("</table></body></html>\n");
    std::fs::write(out.join("index.html"), h)
        .map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    Ok(())
}
