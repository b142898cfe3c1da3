//! The local web server (`[http]`): a status page, a JSON API, a live stream (server-sent
//! events) and Prometheus `/metrics`, read-only, on a thread of its own.
//!
//! It never touches the audio path: handlers read the snapshots [`Live`] keeps, the stream is a
//! broadcast channel a slow client falls behind on (its losses counted), and at most
//! [`live::MOST_STREAMS`] streams are served at once. A configured token is required on every
//! request (`Authorization: Bearer …`, or `?token=…` for the page and its stream).

pub(crate) mod config;
pub mod live;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

pub use config::HttpSettings;
pub use live::Live;

/// The page, with its script and styles inside: no external assets.
const PAGE: &str = include_str!("page.html");
/// How long `stop` waits for open requests before leaving the server thread to end alone.
const STOP_WAIT: Duration = Duration::from_secs(3);

/// A running server.
pub struct Server {
    stop: tokio::sync::watch::Sender<bool>,
    done: std::sync::mpsc::Receiver<()>,
    /// The address it listens on.
    pub addr: SocketAddr,
}

#[derive(Clone)]
struct AppState {
    live: Arc<Live>,
    token: Option<Arc<str>>,
    stop: tokio::sync::watch::Receiver<bool>,
}

/// Binds `settings.listen` (an error names the address) and serves on a thread of its own;
/// `None` when no address is configured.
pub fn start(settings: &HttpSettings, live: Arc<Live>) -> anyhow::Result<Option<Server>> {
    let Some(addr) = settings.listen else {
        return Ok(None);
    };
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| anyhow::anyhow!("http.listen {addr}: {e}"))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let state = AppState {
        live,
        token: settings.token.as_ref().map(|t| Arc::from(t.0.as_str())),
        stop: stop_rx.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let result = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        let mut stop = stop_rx;
                        axum::serve(l, router(state))
                            .with_graceful_shutdown(async move {
                                let _ = stop.wait_for(|s| *s).await;
                            })
                            .await
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    tracing::error!(error = %e, "the web server stopped");
                }
            });
            let _ = done_tx.send(());
        })?;
    tracing::info!(
        address = %addr,
        token = settings.token.is_some(),
        "web page, API and metrics on http://{addr}/"
    );
    Ok(Some(Server { stop, done, addr }))
}

impl Server {
    /// Ends the streams and the server; waits a little for open requests.
    pub fn stop(self) {
        let _ = self.stop.send(true);
        if self.done.recv_timeout(STOP_WAIT).is_err() {
            tracing::warn!("the web server did not stop in time; leaving it");
        }
    }
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/api/status", get(status))
        .route("/api/events", get(events))
        .route("/api/levels", get(levels))
        .route("/api/stream", get(stream))
        .route("/clips/{name}", get(clip))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

/// Requires the token, when one is configured, as a bearer header or a `token` parameter.
async fn auth(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some(token) = &s.token else {
        return next.run(req).await;
    };
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let query = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .map(|t| t.to_owned())
    });
    let given = header.map(str::to_owned).or(query);
    if given.is_some_and(|g| same(g.as_bytes(), token.as_bytes())) {
        return next.run(req).await;
    }
    let mut r = (StatusCode::UNAUTHORIZED, "a bearer token is required\n").into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

async fn page() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Html(PAGE))
}

async fn metrics_text(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(&s.live),
    )
}

async fn healthz(State(s): State<AppState>) -> Response {
    match s.live.notifier.liveness() {
        Ok(()) => (StatusCode::OK, "ok\n".to_owned()).into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn status(State(s): State<AppState>) -> Json<serde_json::Value> {
    let l = &s.live;
    let h = &l.health;
    let (p50, p95) = h.inference_percentiles();
    let mqtt = l.mqtt.as_ref().map(|m| {
        let state = m.state();
        serde_json::json!({
            "connected": m.connected(),
            "connects_total": m.connects_total(),
            "outbox_depth": m.depth(),
            "outbox_problem": state.problem,
            "lost_total": state.lost_total,
        })
    });
    Json(serde_json::json!({
        "v": 1,
        "sensor": l.sensor,
        "model": l.model,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": h.uptime().as_secs(),
        "healthy": l.notifier.liveness().is_ok(),
        "health": l.notifier.liveness().err(),
        "windows_total": h.windows_total.load(Ordering::Relaxed),
        "windows_skipped_total": h.windows_skipped_total.load(Ordering::Relaxed),
        "events_total": h.events_total.load(Ordering::Relaxed),
        "overruns_total": h.source.overruns_total.load(Ordering::Relaxed),
        "source_restarts_total": h.source.restarts_total.load(Ordering::Relaxed),
        "inference_ms_p50": p50,
        "inference_ms_p95": p95,
        "stream_dropped_total": l.stream_dropped.load(Ordering::Relaxed),
        "mqtt": mqtt,
        "watched": l.watched,
        "limits": l.limits,
        "level": l.latest_level(),
        "scores": l.latest_scores(),
    }))
}

#[derive(Deserialize)]
struct EventsQuery {
    limit: Option<usize>,
}

async fn events(State(s): State<AppState>, Query(q): Query<EventsQuery>) -> Response {
    let limit = q.limit.unwrap_or(50);
    if !(1..=live::EVENTS_KEPT).contains(&limit) {
        return (
            StatusCode::BAD_REQUEST,
            format!("limit must be from 1 to {}\n", live::EVENTS_KEPT),
        )
            .into_response();
    }
    Json(s.live.recent_events(limit)).into_response()
}

#[derive(Deserialize)]
struct LevelsQuery {
    since: Option<String>,
}

async fn levels(State(s): State<AppState>, Query(q): Query<LevelsQuery>) -> Response {
    let reports = match q.since.as_deref() {
        None => s.live.levels_since(f64::NEG_INFINITY),
        Some(v) => match (v.parse::<f64>(), v.parse::<jiff::Timestamp>()) {
            (Ok(offset), _) if offset.is_finite() => s.live.levels_since(offset),
            (_, Ok(t)) => s.live.levels_after(t),
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!(
                        "since={v:?}: give seconds from the stream start (e.g. 120) or an \
                         RFC 3339 time (e.g. 2026-12-06T10:00:00Z)\n"
                    ),
                )
                    .into_response()
            }
        },
    };
    Json(reports).into_response()
}

/// A clip from `[clips] dir`, by the file name an event carries.
async fn clip(
    State(s): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    let Some((dir, _)) = &s.live.clips else {
        return (StatusCode::NOT_FOUND, "no clips are kept ([clips] dir)\n").into_response();
    };
    let plain = name.ends_with(".wav")
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !plain {
        return (StatusCode::BAD_REQUEST, "not a clip name\n").into_response();
    }
    match tokio::fs::read(dir.join(&name)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "audio/wav")], bytes).into_response(),
        Err(_) => (
            StatusCode::NOT_FOUND,
            "no such clip (not written yet, withheld for privacy, or removed by retention)\n",
        )
            .into_response(),
    }
}

/// Decrements the count of open streams when a stream ends.
struct Slot(Arc<Live>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.streams_open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn stream(State(s): State<AppState>) -> Response {
    let open = s.live.streams_open.fetch_add(1, Ordering::Relaxed);
    let slot = Slot(Arc::clone(&s.live));
    if open >= live::MOST_STREAMS {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{} live streams are open already\n", live::MOST_STREAMS),
        )
            .into_response();
    }
    let rx = s.live.subscribe();
    let events = futures_util::stream::unfold(
        (rx, s.stop.clone(), slot),
        |(mut rx, mut stop, slot)| async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let received = tokio::select! {
                    m = rx.recv() => Some(m),
                    _ = stop.wait_for(|s| *s) => None,
                };
                match received {
                    None | Some(Err(RecvError::Closed)) => return None,
                    Some(Err(RecvError::Lagged(n))) => slot.0.dropped(n),
                    Some(Ok(m)) => {
                        let e = SseEvent::default().event(m.kind).data(&*m.data);
                        return Some((Ok::<_, std::convert::Infallible>(e), (rx, stop, slot)));
                    }
                }
            }
        },
    );
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abcdef", b"abcdef"));
        assert!(!same(b"abcdef", b"abcdeg"));
        assert!(!same(b"abc", b"abcdef"));
    }
}
