//! Handlers registered through their [`Endpoint`]: [`serve`] takes the
//! method and route from the endpoint and checks, when the daemon compiles,
//! that the handler takes the endpoint's request (its last extractor:
//! `Json`, [`OptionalJson`] or `Query` of it, or none for `()`) and answers
//! its reply (`Json` of it, or an [`Answer`] that may be a stream).

use std::future::Future;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use pmdaemon_core::api::endpoints::{Endpoint, InBody, InQuery, Method};

use super::{ApiError, AppState, HideEnv};

/// Registers `handler` as `E`'s method on `E`'s route.
pub(super) fn serve<E, H, T>(router: Router<AppState>, handler: H) -> Router<AppState>
where
    E: Endpoint,
    H: Handler<T, AppState> + Serves<E, T>,
    T: 'static,
{
    let method = match E::METHOD {
        Method::Get => get(handler),
        Method::Post => post(handler),
        Method::Delete => delete(handler),
    };
    router.route(E::ROUTE, method)
}

/// A handler fit for endpoint `E` (`T` is axum's description of its
/// arguments).
pub(super) trait Serves<E, T> {}

/// An extractor that yields request `R` from where it travels (`W`: the
/// query string of a `GET`, else the body).
pub(super) trait Carries<R, W> {}
impl<R> Carries<R, InBody> for Json<R> {}
impl<R> Carries<R, InBody> for OptionalJson<R> {}
impl<R> Carries<R, InQuery> for Query<R> {}
// Endpoints without a request end their arguments with one of these.
impl<W> Carries<(), W> for State<AppState> {}
impl<W> Carries<(), W> for Path<String> {}
impl<W> Carries<(), W> for Option<Extension<HideEnv>> {}

/// What a handler answering `R` returns.
pub(super) trait Replies<R> {}
impl<R> Replies<R> for Json<R> {}
impl<R> Replies<R> for Result<Json<R>, ApiError> {}
impl<R> Replies<R> for Result<Answer<R>, ApiError> {}

impl<F, Fut, E> Serves<E, ((),)> for F
where
    E: Endpoint<Request = ()>,
    F: FnOnce() -> Fut,
    Fut: Future,
    Fut::Output: Replies<E::Reply>,
{
}

macro_rules! serves {
    ($($before:ident),* ; $last:ident) => {
        impl<F, Fut, E, M, $($before,)* $last> Serves<E, (M, $($before,)* $last)> for F
        where
            E: Endpoint,
            F: FnOnce($($before,)* $last) -> Fut,
            Fut: Future,
            Fut::Output: Replies<E::Reply>,
            $last: Carries<E::Request, E::Wire>,
        {
        }
    };
}
serves!(; T1);
serves!(T1; T2);
serves!(T1, T2; T3);
serves!(T1, T2, T3; T4);

/// The answer of an endpoint that can also stream: its reply as JSON, or a
/// stream of lines.
pub(super) enum Answer<R> {
    /// The endpoint's reply.
    Json(R),
    /// `application/x-ndjson` lines.
    Stream(Response),
}

impl<R: serde::Serialize> IntoResponse for Answer<R> {
    fn into_response(self) -> Response {
        match self {
            Self::Json(reply) => Json(reply).into_response(),
            Self::Stream(response) => response,
        }
    }
}

/// A JSON body that may be left out (then `R`'s defaults apply).
pub(super) struct OptionalJson<R>(pub R);

impl<R, S> FromRequest<S> for OptionalJson<R>
where
    R: serde::de::DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        // The verb, for the error: `…/restart` → "bad restart request".
        let verb = request
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(R::default()));
        }
        serde_json::from_slice(&body).map(Self).map_err(|err| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("bad {verb} request: {err}"),
            )
            .into_response()
        })
    }
}
