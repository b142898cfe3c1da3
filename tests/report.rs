//! The local history and site reports (issue 30): a run fills the history with exactly what it
//! printed, kill -9 loses nothing printed, retention removes old days; a synthetic day's
//! report has the known figures and a real browser renders it.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::util::{bin, repo, run_ok};

/// A configuration replaying `source` with levels every second and a history in `dir`.
fn config(dir: &Path, source: &str, extra: &str) -> (PathBuf, PathBuf) {
    let history = dir.join("history.sqlite");
    let cfg = dir.join("soundsentry.toml");
    std::fs::write(
        &cfg,
        format!(
            "sensor_id = \"site\"\n[model]\npath = {:?}\n[source]\n{source}\n\
             [output]\nstdout = true\n[levels]\nenabled = true\ninterval = \"1s\"\n\
             timezone = \"UTC\"\nbands = \"octave\"\n\
             [[levels.limit]]\nmetric = \"laeq\"\nperiod = \"1m\"\nthreshold_db = -30\n\
             [history]\npath = {history:?}\n{extra}",
            repo("models/sitehome-tiny-ast")
        ),
    )
    .expect("config");
    (cfg, history)
}

fn lines_of(db: &Connection, table: &str) -> Vec<String> {
    let mut q = db
        .prepare(&format!("SELECT line FROM {table} ORDER BY id"))
        .expect("query");
    q.query_map([], |r| r.get::<_, String>(0))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect()
}

fn integrity(db: &Connection) -> String {
    db.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check")
}

#[test]
fn issue_30_a_run_keeps_exactly_what_it_printed() {
    let dir = tempfile::tempdir().expect("tmp");
    let source = format!("kind = \"file\"\npath = {:?}", repo("samples/demo-20s.wav"));
    let (cfg, history) = config(dir.path(), &source, "");
    let out = run_ok(bin().args(["run", "--config"]).arg(&cfg));
    let printed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let db = Connection::open(&history).expect("open");
    assert_eq!(integrity(&db), "ok");
    let levels: Vec<&String> = printed
        .iter()
        .filter(|l| l.contains("\"type\":\"level\""))
        .collect();
    let events: Vec<&String> = printed.iter().filter(|l| l.contains("\"state\"")).collect();
    let days = printed
        .iter()
        .filter(|l| l.contains("\"type\":\"day\""))
        .count();
    assert_eq!(days, 1, "the day's figures at the end of the run");
    // a report a second on the clock: the first and last shorter, 20 s in all
    let seconds: f64 = levels
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("JSON")["interval_s"]
                .as_f64()
                .expect("interval")
        })
        .sum();
    assert!(
        (seconds - 20.0).abs() < 1e-6 && levels.len() >= 20,
        "{seconds} s in {} reports",
        levels.len()
    );
    assert!(
        levels.iter().all(|l| l.contains("\"bands\"")),
        "octave bands in the reports"
    );
    assert!(events.len() >= 6, "{events:?}");
    assert_eq!(lines_of(&db, "levels").iter().collect::<Vec<_>>(), levels);
    assert_eq!(lines_of(&db, "events").iter().collect::<Vec<_>>(), events);
    let notes: Vec<String> = db
        .prepare("SELECT kind FROM notes ORDER BY id")
        .expect("notes")
        .query_map([], |r| r.get(0))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect();
    assert_eq!(notes, ["start", "stop"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.lines()
            .any(|l| l.contains(" history") && l.contains("dropped_total=0")),
        "{log}"
    );
}

#[test]
fn issue_30_kill_9_loses_nothing_printed_and_the_file_opens_clean() {
    let dir = tempfile::tempdir().expect("tmp");
    let source = format!(
        "kind = \"file\"\npath = {:?}\nrealtime = true",
        repo("samples/demo-20s.wav")
    );
    let (cfg, history) = config(dir.path(), &source, "");
    for round in 0..2 {
        let mut daemon = bin()
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run");
        let mut reader = std::io::BufReader::new(daemon.stdout.take().expect("stdout"));
        // read what it prints for about 6 s (a report a second, events), then kill -9
        let mut printed = Vec::new();
        let until = Instant::now() + Duration::from_secs(60);
        while printed
            .iter()
            .filter(|l: &&String| l.contains("\"type\":\"level\""))
            .count()
            < 6
        {
            assert!(Instant::now() < until, "no level reports: {printed:?}");
            let mut line = String::new();
            if reader.read_line(&mut line).expect("read") == 0 {
                break;
            }
            printed.push(line.trim_end().to_owned());
        }
        let status = Command::new("kill")
            .args(["-KILL", &daemon.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let _ = daemon.wait();
        let db = Connection::open(&history).expect("open after kill -9");
        assert_eq!(integrity(&db), "ok", "round {round}");
        let kept: Vec<String> = [lines_of(&db, "levels"), lines_of(&db, "events")].concat();
        for line in &printed {
            assert!(
                kept.contains(line),
                "round {round}: printed but not kept: {line}"
            );
        }
        println!(
            "round {round}: {} lines printed before kill -9, all kept",
            printed.len()
        );
    }
    // two runs, no stop note in between (killed): the report says how the gap arose
    let db = Connection::open(&history).expect("open");
    let starts: i64 = db
        .query_row("SELECT COUNT(*) FROM notes WHERE kind = 'start'", [], |r| {
            r.get(0)
        })
        .expect("count");
    assert_eq!(starts, 2);
}

#[test]
fn issue_30_retention_removes_old_days_and_keeps_the_file_under_its_cap() {
    use soundsentry::archive::store;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("h.sqlite");
    let mut db = store::open(&path).expect("open");
    let now = 1_800_000_000.0;
    // a level report a minute for 10 days, the oldest 9.5 days ago
    let lines: String = (0..14_400)
        .map(|m| {
            let t = now - 9.5 * 86_400.0 + f64::from(m) * 60.0;
            let at = |t: f64| {
                jiff::Timestamp::from_second(t as i64)
                    .expect("time")
                    .to_string()
            };
            format!(
                "{{\"type\":\"level\",\"sensor\":\"s\",\"start\":\"{}\",\"end\":\"{}\",\
                 \"interval_s\":60.0,\"laeq\":50.0,\"lamax\":60.0,\"calibrated\":true,\
                 \"pad\":\"{}\"}}\n",
                at(t),
                at(t + 60.0),
                "x".repeat(200)
            )
        })
        .collect();
    store::import(&mut db, &lines).expect("import");
    let count = |db: &Connection| -> i64 {
        db.query_row("SELECT COUNT(*) FROM levels", [], |r| r.get(0))
            .expect("count")
    };
    assert_eq!(count(&db), 14_400);
    // 7 days kept: the 2.5 oldest days go
    let removed = store::retain(&mut db, now, 7, u64::MAX).expect("retain");
    assert_eq!(removed, 3_600);
    assert_eq!(count(&db), 10_800);
    let oldest: f64 = db
        .query_row("SELECT MIN(start_unix) FROM levels", [], |r| r.get(0))
        .expect("oldest");
    assert!(oldest >= now - 7.0 * 86_400.0);
    // a size cap of half the data: whole oldest days go until it fits
    let size = store::size(&db).expect("size");
    store::retain(&mut db, now, 7, size / 2).expect("retain");
    assert!(store::size(&db).expect("size") <= size / 2);
    assert!(count(&db) < 10_800 / 2 + 1_440, "{}", count(&db));
    assert_eq!(integrity(&db), "ok");
    // the file itself shrank (incremental vacuum)
    drop(db);
    let bytes = std::fs::metadata(&path).expect("file").len();
    assert!(
        bytes <= size / 2 + 64 * 1024,
        "{bytes} bytes on disk vs a cap of {}",
        size / 2
    );
}

/// The synthetic day of tools/site_day.py (levels and events known by construction).
fn site_day(dir: &Path) -> PathBuf {
    let out = Command::new("python3")
        .arg(repo("tools/site_day.py"))
        .args(["--date", "2026-12-01"])
        .output()
        .expect("python3 tools/site_day.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join("day.jsonl");
    std::fs::write(&path, out.stdout).expect("write");
    path
}

fn csv(path: &Path) -> Vec<Vec<String>> {
    let mut r = ::csv::Reader::from_path(path).expect("csv");
    r.records()
        .map(|x| x.expect("record").iter().map(str::to_owned).collect())
        .collect()
}

fn energy(parts: &[(f64, f64)]) -> f64 {
    let t: f64 = parts.iter().map(|p| p.1).sum();
    10.0 * (parts
        .iter()
        .map(|(l, s)| s * 10f64.powf(l / 10.0))
        .sum::<f64>()
        / t)
        .log10()
}

#[test]
fn issue_30_a_synthetic_days_report_has_the_known_figures_and_renders() {
    let dir = tempfile::tempdir().expect("tmp");
    let lines = site_day(dir.path());
    let source = format!("kind = \"file\"\npath = {:?}", repo("samples/demo-20s.wav"));
    let (cfg, _) = config(dir.path(), &source, "");
    // the day's own rules: LAeq 1 h over 70 dB from 07:00 to 19:00, loud nights over 65 dB
    let text = std::fs::read_to_string(&cfg).expect("config");
    let text = text
        .replace(
            "period = \"1m\"\nthreshold_db = -30",
            "period = \"1h\"\nthreshold_db = 70\nhours = \"07:00-19:00\"",
        )
        .replace(
            "bands = \"octave\"\n",
            "bands = \"octave\"\nnight_lamax_db = 65\n",
        );
    std::fs::write(&cfg, text).expect("config");
    let out = dir.path().join("reports");
    run_ok(
        bin()
            .args(["report", "--config"])
            .arg(&cfg)
            .arg("--lines")
            .arg(&lines)
            .arg("--out")
            .arg(&out),
    );
    let day = out.join("2026-12-01");
    // hours: the known levels; 10:00 the loud hour; 15:00 half measured
    let hours = csv(&day.join("hours.csv"));
    assert_eq!(hours.len(), 24);
    let row = |h: usize| hours[h][1..].to_vec();
    assert_eq!(row(3), ["40.00", "50.00", "40.00", "40.00", "3600.00"]);
    assert_eq!(
        row(2)[1],
        "70.00",
        "the loud night minute is in 02:00's LAFmax"
    );
    assert_eq!(row(10), ["75.00", "85.00", "75.00", "75.00", "3600.00"]);
    assert_eq!(row(15), ["60.00", "70.00", "60.00", "60.00", "1800.00"]);
    assert_eq!(row(20), ["50.00", "60.00", "50.00", "50.00", "3600.00"]);
    assert_eq!(csv(&day.join("quarters.csv")).len(), 96);
    // limits: 12 hourly periods from 07:00, only 10:00 over
    let limits = csv(&day.join("limits.csv"));
    assert_eq!(limits.len(), 12);
    let over: Vec<&Vec<String>> = limits.iter().filter(|r| r[5] == "over").collect();
    assert_eq!(over.len(), 1);
    assert!(over[0][1].starts_with("2026-12-01T10:00:00"), "{over:?}");
    assert_eq!(over[0][3], "75.00");
    // named periods, Lden, Ldn, loud night events
    let periods = csv(&day.join("periods.csv"));
    let get = |name: &str| -> f64 {
        periods
            .iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("{name} in {periods:?}"))[1]
            .parse()
            .expect("number")
    };
    // day 07–19: 10.5 h at 60 dB (15:00–15:30 missing) and 1 h at 75 dB
    let day_laeq = energy(&[(60.0, 10.5), (75.0, 1.0)]);
    assert!(
        (get("day") - day_laeq).abs() < 0.006,
        "{} vs {day_laeq}",
        get("day")
    );
    assert_eq!(get("evening"), 50.0);
    assert_eq!(get("night"), 40.0);
    let lden = 10.0
        * (12.0 / 24.0 * 10f64.powf(day_laeq / 10.0)
            + 4.0 / 24.0 * 10f64.powf(55.0 / 10.0)
            + 8.0 / 24.0 * 10f64.powf(50.0 / 10.0))
        .log10();
    assert!(
        (get("Lden") - lden).abs() < 0.006,
        "{} vs {lden}",
        get("Lden")
    );
    // Ldn: day 07–22 (10.5 h at 60, 1 h at 75, 3 h at 50), night 22–07 (1 h at 50, 8 h at
    // 40) + 10 dB
    let ld = energy(&[(60.0, 10.5), (75.0, 1.0), (50.0, 3.0)]);
    let ln = energy(&[(50.0, 1.0), (40.0, 8.0)]);
    let ldn = 10.0
        * (15.0 / 24.0 * 10f64.powf(ld / 10.0) + 9.0 / 24.0 * 10f64.powf((ln + 10.0) / 10.0))
            .log10();
    assert!((get("Ldn") - ldn).abs() < 0.006, "{} vs {ldn}", get("Ldn"));
    assert_eq!(get("night LAFmax events > 65"), 2.0);
    let events = csv(&day.join("events.csv"));
    let labels: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|r| (r[2].as_str(), &r[3][11..19], &r[4][11..19]))
        .collect();
    assert_eq!(
        labels,
        [
            ("Dog", "02:00:10", "02:00:40"),
            ("Jackhammer", "10:05:00", "10:50:00")
        ]
    );
    // the page: its charts embedded, the gap named
    let html = std::fs::read_to_string(day.join("report.html")).expect("report");
    // the loudest quarter-hours are the loud hour's, their 63 Hz band on top
    let spectrum = csv(&day.join("spectrum.csv"));
    assert_eq!(spectrum.len(), 3);
    for q in &spectrum {
        assert!(q[0].starts_with("2026-12-01T10:"), "{q:?}");
        assert_eq!(
            (q[1].as_str(), q[2].as_str(), q[3].as_str()),
            ("70.00", "78.00", "70.00")
        );
    }
    for chart in ["levels.png", "spectrum.png", "events.png"] {
        assert!(html.contains(&format!("data-chart=\"{chart}\"")), "{chart}");
    }
    assert!(html.contains("<td>15:00</td><td>15:30</td><td class=\"l\">no measurements</td>"));
    assert!(html.contains("1 of 12 periods over their limit"));
    // a real browser renders it: every chart decodes, the tables are there, no errors
    let (browser, tab, errors) = crate::util::chromium(dir.path());
    let url = format!("file://{}", day.join("report.html").display());
    tab.navigate_to(&url)
        .expect("navigate")
        .wait_until_navigated()
        .expect("loaded");
    let eval = |js: &str| {
        tab.evaluate(js, false)
            .expect("evaluate")
            .value
            .unwrap_or_default()
    };
    let widths =
        eval("JSON.stringify([...document.images].map(i => i.complete ? i.naturalWidth : 0))");
    assert_eq!(
        widths.as_str(),
        Some("[1100,1100,1100]"),
        "charts decoded by the browser"
    );
    assert_eq!(
        eval("document.querySelectorAll('#hours tr').length").as_u64(),
        Some(25)
    );
    assert_eq!(
        eval("document.querySelectorAll('#limits tr.over').length").as_u64(),
        Some(1)
    );
    let shot = crate::util::screenshot(&tab, &dir.path().join("report.png"));
    assert!(shot.colours() > 50, "{}", shot.colours());
    assert!(
        errors.lock().expect("lock").is_empty(),
        "{:?}",
        errors.lock()
    );
    drop(tab);
    drop(browser);
    // the index links the day
    let index = std::fs::read_to_string(out.join("index.html")).expect("index");
    assert!(index.contains("href=\"2026-12-01/report.html\""));
}

#[test]
fn issue_30_report_refuses_what_it_cannot_do() {
    let dir = tempfile::tempdir().expect("tmp");
    let fails = |args: &[&str], want: &str| {
        let out = bin().arg("report").args(args).output().expect("run");
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    };
    let out = dir.path().join("r");
    let out = out.to_str().expect("path");
    fails(&["--out", out], "no history to report");
    fails(
        &["--history", "/nonexistent/h.sqlite", "--out", out],
        "no such history file",
    );
    let lines = site_day(dir.path());
    let lines = lines.to_str().expect("path");
    fails(
        &["--lines", lines, "--from", "2026-13-01", "--out", out],
        "--from 2026-13-01",
    );
    fails(
        &[
            "--lines",
            lines,
            "--from",
            "2026-12-02",
            "--to",
            "2026-12-01",
            "--out",
            out,
        ],
        "is after",
    );
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "\nnot json\n").expect("write");
    fails(
        &["--lines", bad.to_str().expect("path"), "--out", out],
        "line 2: not JSON",
    );
    std::fs::write(
        &bad,
        "{\"type\":\"level\",\"start\":\"2026-12-01T00:00:00Z\"}\n",
    )
    .expect("write");
    fails(
        &["--lines", bad.to_str().expect("path"), "--out", out],
        "line 1: a level report without \"end\"",
    );
}

#[test]
fn issue_30_report_file_analyses_a_recording_placed_in_time() {
    let dir = tempfile::tempdir().expect("tmp");
    let source = "kind = \"capture\"";
    let (cfg, _) = config(dir.path(), source, "");
    let out = dir.path().join("reports");
    let run = run_ok(
        bin()
            .args(["report", "--config"])
            .arg(&cfg)
            .arg("--file")
            .arg(repo("samples/demo-20s.wav"))
            .args(["--start", "2026-12-01T09:59:50Z", "--out"])
            .arg(&out),
    );
    let printed = String::from_utf8_lossy(&run.stdout);
    assert!(printed.contains("2026-12-01/report.html"), "{printed}");
    // 10 s in the 09:00 hour, 10 s in the 10:00 hour; the demo's sounds are the events
    let hours = csv(&out.join("2026-12-01/hours.csv"));
    assert_eq!(
        (hours[9][5].as_str(), hours[10][5].as_str()),
        ("10.00", "10.00")
    );
    let events = csv(&out.join("2026-12-01/events.csv"));
    let labels: Vec<&str> = events.iter().map(|r| r[2].as_str()).collect();
    assert!(labels.contains(&"Jackhammer"), "{labels:?}");
    assert!(events.iter().all(|r| r[3].starts_with("2026-12-01T")));
    // the recording's history is kept beside the reports
    let db = Connection::open(out.join("history.sqlite")).expect("history");
    assert_eq!(integrity(&db), "ok");
}

#[test]
fn issue_30_a_full_disk_holds_the_rows_until_it_has_room() {
    let dir = tempfile::tempdir().expect("tmp");
    let disk = crate::util::TinyDisk::mount(1024);
    disk.fill();
    let source = format!(
        "kind = \"file\"\npath = {:?}\nrealtime = true",
        repo("samples/demo-20s.wav")
    );
    let (cfg, _) = config(dir.path(), &source, "");
    let history = disk.0.path().join("history.sqlite");
    let text = std::fs::read_to_string(&cfg).expect("config");
    let text = text.replace(
        &format!("path = {:?}", dir.path().join("history.sqlite")),
        &format!("path = {history:?}"),
    );
    std::fs::write(&cfg, text).expect("config");
    let daemon = bin()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    // the disk stays full for the first 8 s of the 20 s replay
    std::thread::sleep(Duration::from_secs(8));
    disk.free();
    let out = daemon.wait_with_output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("history cannot be opened") || log.contains("history not written"),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains(" history ") && l.contains("dropped_total=0")),
        "{log}"
    );
    let printed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("\"type\":\"day\""))
        .map(str::to_owned)
        .collect();
    let db = Connection::open(&history).expect("open");
    assert_eq!(integrity(&db), "ok");
    let kept: Vec<String> = [lines_of(&db, "levels"), lines_of(&db, "events")].concat();
    assert!(printed.len() > 25, "{printed:?}");
    for line in &printed {
        assert!(
            kept.contains(line),
            "printed while the disk was full, then lost: {line}"
        );
    }
}

#[test]
fn issue_30_source_restarts_are_noted_and_reported() {
    let dir = tempfile::tempdir().expect("tmp");
    // a command that gives 1 s of audio and exits: the daemon starts it again and again
    let source = "kind = \"command\"\ncommand = [\"sh\", \"-c\", \"head -c 32000 /dev/zero\"]\n\
                  format = \"s16le\"\nrate = 16000";
    let (cfg, history) = config(dir.path(), source, "");
    let mut daemon = bin()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run");
    let until = Instant::now() + Duration::from_secs(30);
    let noted = || -> i64 {
        Connection::open(&history)
            .and_then(|db| {
                db.query_row(
                    "SELECT COUNT(*) FROM notes WHERE kind = 'source restart'",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap_or(0)
    };
    while noted() < 2 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let _ = daemon.wait();
    assert!(noted() >= 2, "restarts noted: {}", noted());
    let out = dir.path().join("r");
    run_ok(
        bin()
            .args(["report", "--config"])
            .arg(&cfg)
            .args(["--from", "today", "--out"])
            .arg(&out),
    );
    let today = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::UTC)
        .date();
    let html =
        std::fs::read_to_string(out.join(today.to_string()).join("report.html")).expect("report");
    assert!(html.contains("id=\"restarts\""), "restarts in the report");
}
