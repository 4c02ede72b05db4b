//! The routes, the order of the middleware around them, the embedded
//! assets, and serving until shutdown.
//!
//! Middleware, outermost first: security headers on every response, then
//! the host check (without a token), the token (when there is one), then
//! the checks on every POST (origin, CSRF token). In read-only mode the
//! action routes are not mounted at all, the form pages answer 403, and
//! the POST layer refuses any POST that still arrives.
//!
//! `serve` tells the router the address it really listens on (the port a
//! `:0` listener got), for the host check, and gives every request its
//! peer's address, for the throttle of wrong tokens.

use std::future::Future;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::error::{PageError, StartError};
use crate::pages::{download, enqueue, failures, job, overview, progress, service, workers};
use crate::schema_catalog::Catalog;
use crate::state::AppState;
use crate::{actions, auth, security, Options};

const CSS: &str = include_str!("../assets/dashboard.css");
const JS: &str = include_str!("../assets/dashboard.js");

/// The dashboard's routes for `options`, and the state they share (whose
/// sampler the caller starts, see [`serve`]).
pub fn router(options: Options) -> Result<(Router, AppState), StartError> {
    security::check_token(options.token.as_deref())?;
    let catalog = Catalog::load(&options.schemas).map_err(StartError::Schema)?;
    let state = AppState::new(options, catalog);
    let mut routes = Router::new()
        .route("/", get(overview::overview))
        .route("/workers", get(workers::workers))
        .route("/failures", get(failures::failures))
        .route("/jobs", get(job::lookup))
        .route("/jobs/{id}", get(job::job))
        .route("/jobs/{id}/result", get(download::kept_result))
        .route("/jobs/{id}/progress", get(progress::fragment))
        .route("/services/{service}", get(service::service))
        .route(
            "/services/{service}/queue/{token}/message",
            get(download::queued_message),
        )
        .route(
            "/services/{service}/dead/{token}/message",
            get(download::dead_message),
        )
        .route(
            "/services/{service}/scheduled/{id}/message",
            get(download::scheduled_message),
        )
        .route("/services/{service}/jobs/{job}/new", get(enqueue::new_call))
        .route(
            "/services/{service}/dead/{token}/edit",
            get(enqueue::edit_dead_letter),
        )
        .route("/assets/dashboard.css", get(css))
        .route("/assets/dashboard.js", get(js));
    if !state.read_only() {
        routes = routes
            .route("/services/{service}/jobs/{job}/new", post(actions::enqueue))
            .route(
                "/services/{service}/dead/replay-all",
                post(actions::replay_all),
            )
            .route(
                "/services/{service}/dead/delete-all",
                post(actions::delete_all),
            )
            .route(
                "/services/{service}/dead/{token}/replay",
                post(actions::replay_one),
            )
            .route(
                "/services/{service}/dead/{token}/delete",
                post(actions::delete_one),
            )
            .route(
                "/services/{service}/dead/{token}/edit",
                post(actions::edit_and_replay),
            )
            .route(
                "/services/{service}/calls/{id}/cancel",
                post(actions::cancel),
            )
            .route("/services/{service}/pause", post(actions::pause))
            .route("/services/{service}/resume", post(actions::resume))
            .route("/workers/{id}/quiet", post(actions::quiet_worker))
            .route("/workers/{id}/stop", post(actions::stop_worker));
    }
    let router = routes
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::check_post,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::require_known_host,
        ))
        .layer(axum::middleware::from_fn(security::security_headers))
        .with_state(state.clone());
    Ok((router, state))
}

/// Serves on `listener` until `shutdown` resolves, sampling in the background.
pub async fn serve(
    listener: tokio::net::TcpListener,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let mut options = options;
    options.listen = listener.local_addr().map_err(|e| StartError::Bind {
        listen: options.listen,
        source: e,
    })?;
    let (every, keep) = (options.sample_every, options.samples_kept);
    let (router, state) = router(options)?;
    let sampling = state.sampler().spawn(state.clone(), every, keep);
    let app = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    sampling.abort();
    served.map_err(StartError::Serve)
}

async fn not_found() -> Response {
    PageError::NotFound("no such page".to_owned()).into_response()
}

async fn css() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}
