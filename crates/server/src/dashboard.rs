//! The dashboard's routes: sign-in with a site's secret key or the admin password (a
//! session cookie: HttpOnly, SameSite=Strict, Secure behind https), the site switcher,
//! every page and its CSV downloads, and the static assets. Rendering is the
//! `upshot-dashboard` crate's; reports come from the cached `report::compute`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use upshot_dashboard::{layout, Page, View};
use upshot_store::SiteRecord;

use crate::keys::{constant_time_equal, sha256, KeyRole};
use crate::AppState;

const COOKIE: &str = "upshot_session";
/// How long a page waits for its figures before it answers with a "computing" notice.
const PAGE_WAIT: Duration = Duration::from_millis(250);
/// A session lasts this long after sign-in.
const SESSION_SECONDS: u64 = 12 * 3600;
/// Sessions kept at most; past it, the oldest are dropped (they sign in again).
const SESSIONS_MAX: usize = 10_000;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Access {
    /// Signed in with the admin password.
    AllSites,
    /// Signed in with this site's secret key.
    Site(String),
}

struct Session {
    access: Access,
    expires: Instant,
}

/// Signed-in browsers, by the random token in their cookie. In memory: a restart signs
/// everyone out, which is the safe direction.
#[derive(Default)]
pub struct Sessions {
    by_token: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn create(&self, token: String, access: Access) {
        let mut sessions = self.by_token.lock().expect("no thread panics while holding the sessions");
        sessions.retain(|_, session| session.expires > Instant::now());
        if sessions.len() >= SESSIONS_MAX {
            let oldest = sessions.iter().min_by_key(|(_, session)| session.expires).map(|(token, _)| token.clone());
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(token, Session { access, expires: Instant::now() + Duration::from_secs(SESSION_SECONDS) });
    }

    fn access(&self, token: &str) -> Option<Access> {
        let sessions = self.by_token.lock().expect("no thread panics while holding the sessions");
        sessions.get(token).filter(|session| session.expires > Instant::now()).map(|session| session.access.clone())
    }

    fn remove(&self, token: &str) {
        self.by_token.lock().expect("no thread panics while holding the sessions").remove(token);
    }
}

fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

fn access_of(state: &AppState, headers: &HeaderMap) -> Option<Access> {
    session_token(headers).and_then(|token| state.sessions.access(&token))
}

fn html_page(status: StatusCode, body: String) -> Response {
    let mut response = (status, Html(body)).into_response();
    let headers = response.headers_mut();
    // Nothing but the server's own resources, no framing by other sites.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

fn problem(status: StatusCode, title: &str, message: &str, back: &str) -> Response {
    html_page(status, layout::problem(title, message, back))
}

pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "app.css" => (upshot_dashboard::APP_CSS, "text/css; charset=utf-8"),
        "app.js" => (upshot_dashboard::APP_JS, "application/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=300")], body).into_response()
}

/// `/`: the first site the session may see, else the sign-in page.
pub async fn home(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match access_of(&state, &headers) {
        Some(access) => match sites_for(&state, &access).first() {
            Some(site) => Redirect::to(&format!("/sites/{}/", upshot_dashboard::view::encode(site))).into_response(),
            None => problem(StatusCode::OK, "No sites yet", "Create one with `upshot site create SITE`.", "/signin"),
        },
        None => Redirect::to("/signin").into_response(),
    }
}

pub async fn sign_in_form() -> Response {
    html_page(StatusCode::OK, layout::sign_in(None))
}

#[derive(Deserialize)]
pub struct SignIn {
    #[serde(default)]
    site: String,
    #[serde(default)]
    secret: String,
}

async fn random_token() -> Option<String> {
    tokio::task::spawn_blocking(|| {
        use std::io::Read;
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom").and_then(|mut file| file.read_exact(&mut bytes)).ok()?;
        Some(bytes.iter().map(|byte| format!("{byte:02x}")).collect::<String>())
    })
    .await
    .ok()
    .flatten()
}

pub async fn sign_in(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    if !same_origin(&headers) {
        return cross_site_refusal();
    }
    let site = form.site.trim();
    let client = peer.ip();
    // Tries are limited per client, per site and overall, each waiting longer after
    // each failure (signin.rs): guessing is hopeless, and nobody else is locked out.
    if let Err(wait) = state.sign_in_guard.check(client, site, Instant::now()) {
        let seconds = wait.as_secs().max(1);
        let message = format!("Too many failed sign-ins; try again in {seconds} s.");
        let mut response = html_page(StatusCode::TOO_MANY_REQUESTS, layout::sign_in(Some(&message)));
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return response;
    }
    let secret = form.secret.trim();
    let admin = state.admin_password_sha256.is_some_and(|stored| constant_time_equal(&stored, &sha256(secret)));
    let access = if admin {
        Some(Access::AllSites)
    } else {
        state.authorize(secret).await.filter(|authorized| authorized.role == KeyRole::Secret).and_then(|authorized| {
            (site.is_empty() || site == authorized.site.site).then(|| Access::Site(authorized.site.site.clone()))
        })
    };
    let Some(access) = access else {
        state.sign_in_guard.failed(client, site, Instant::now());
        let message = "That is not the site's secret key or the admin password.";
        return html_page(StatusCode::UNAUTHORIZED, layout::sign_in(Some(message)));
    };
    state.sign_in_guard.succeeded(client, site);
    let Some(token) = random_token().await else {
        return problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sign-in failed",
            "No random source for a session.",
            "/signin",
        );
    };
    state.sessions.create(token.clone(), access);
    let https = headers.get("x-forwarded-proto").and_then(|value| value.to_str().ok()) == Some("https");
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}{}",
        if https { "; Secure" } else { "" }
    );
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

pub async fn sign_out(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return cross_site_refusal();
    }
    if let Some(token) = session_token(&headers) {
        state.sessions.remove(&token);
    }
    let mut response = Redirect::to("/signin").into_response();
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_static("upshot_session=; Path=/; Max-Age=0"));
    response
}

/// A sign-in or sign-out form must come from the dashboard's own pages: a browser
/// posting it from another site's page says so in `Origin` (or, failing that,
/// `Referer`), which must name this server's host (`X-Forwarded-Host` behind a proxy).
/// A request with neither (a script, curl) is not a browser being tricked, and passes.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let Some(source) = text("origin").or_else(|| text("referer")) else {
        return true;
    };
    let host = text("x-forwarded-host").or_else(|| text("host")).unwrap_or_default();
    let source_host = source.split_once("://").map_or("", |(_, rest)| rest.split('/').next().unwrap_or_default());
    !host.is_empty() && source_host.eq_ignore_ascii_case(host)
}

fn cross_site_refusal() -> Response {
    problem(
        StatusCode::FORBIDDEN,
        "Sign-in refused",
        "This form was sent from another site's page. Open the dashboard's own sign-in page and try again.",
        "/signin",
    )
}

#[derive(Deserialize)]
pub struct Switch {
    site: String,
}

pub async fn switch(Query(switch): Query<Switch>) -> Response {
    Redirect::to(&format!("/sites/{}/", upshot_dashboard::view::encode(&switch.site))).into_response()
}

fn sites_for(state: &AppState, access: &Access) -> Vec<String> {
    match access {
        Access::AllSites => state.keys.read().expect("no thread panics while holding the keys").site_ids(),
        Access::Site(site) => vec![site.clone()],
    }
}

pub async fn overview(
    State(state): State<Arc<AppState>>,
    Path(site): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    show(&state, &site, "", &params, &headers).await
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    Path((site, rest)): Path<(String, String)>,
    Query(params): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    show(&state, &site, &rest, &params, &headers).await
}

/// The site record and view a signed-in request may see, or the page saying why not.
fn view_for(
    state: &AppState,
    site: &str,
    params: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> Result<(Arc<SiteRecord>, View), Box<Response>> {
    let Some(access) = access_of(state, headers) else {
        return Err(Box::new(Redirect::to("/signin").into_response()));
    };
    let sites = sites_for(state, &access);
    if !sites.iter().any(|allowed| allowed == site) {
        let message = "You are signed in for another site. Sign out and sign in with this site's key.";
        return Err(Box::new(problem(StatusCode::FORBIDDEN, "Not your site", message, "/")));
    }
    let record = state.keys.read().expect("no thread panics while holding the keys").site(site);
    let Some(record) = record else {
        return Err(Box::new(problem(
            StatusCode::NOT_FOUND,
            "No such site",
            "The site does not exist (any more).",
            "/",
        )));
    };
    let view = View::from_params(site, sites, params, site_today(&record)).map_err(|message| {
        Box::new(problem(StatusCode::BAD_REQUEST, "That view does not exist", &message, &format!("/sites/{site}/")))
    })?;
    Ok((record, view))
}

fn query_for(
    record: &SiteRecord,
    view: &View,
    from: jiff::civil::Date,
    to: jiff::civil::Date,
) -> Option<upshot_engine::Query> {
    upshot_scan::ReportParams {
        from: from.to_string(),
        to: to.to_string(),
        page_type: view.page_type.clone(),
        placement: None,
        kind: None,
        model: Some(view.model.clone()),
        segment: view.segment.clone(),
    }
    .query(record, str::to_string)
    .ok()
    .map(|query| upshot_engine::Query { now_ms: Some(jiff::Timestamp::now().as_millisecond()), ..query })
}

async fn show(
    state: &Arc<AppState>,
    site: &str,
    rest: &str,
    params: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let (record, view) = match view_for(state, site, params, headers) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let (path, csv_table) = match rest.strip_suffix(".csv") {
        Some(page) => (page, params.get("table").cloned()),
        None => (rest, None),
    };
    let Some(page) = Page::parse(path) else {
        return problem(StatusCode::NOT_FOUND, "No such page", "That page does not exist.", &format!("/sites/{site}/"));
    };
    if note_visit(state, &record.site) {
        // Someone looks at this site: its day partials get current.
        let (task_state, task_record) = (state.clone(), record.clone());
        tokio::spawn(async move { crate::partials::rebuild_if_needed(&task_state, task_record).await });
    }
    let Some(query) = query_for(&record, &view, view.from, view.to) else {
        return problem(StatusCode::BAD_REQUEST, "That view does not exist", "The range is too long.", "/");
    };
    // The reports are computed in tasks of their own (they land in the cache): a page
    // whose figures take longer than a moment answers at once with a notice that
    // reloads itself, instead of leaving the browser waiting.
    let mut queries = vec![query];
    let previous_query = view
        .previous_range()
        .and_then(|(from, to)| query_for(&record, &view, from, to))
        .filter(|_| page.needs_previous() && csv_table.is_none());
    queries.extend(previous_query);
    let (task_state, task_record) = (state.clone(), record.clone());
    // Both ranges together (sums of day partials, or one pass over the data), in a
    // task of its own.
    let computing =
        tokio::spawn(async move { crate::report::compute_many(&task_state, task_record.clone(), queries).await });
    let both = async {
        match computing.await {
            Ok(Ok(mut reports)) => {
                let previous = (reports.len() > 1).then(|| reports.pop()).flatten();
                (Ok(Ok(reports.swap_remove(0))), previous)
            }
            Ok(Err(error)) => (Ok(Err(error)), None),
            Err(error) => (Err(error), None),
        }
    };
    let waited = if csv_table.is_some() { None } else { Some(PAGE_WAIT) };
    let (current, previous) = match waited {
        Some(wait) => match tokio::time::timeout(wait, both).await {
            Ok(done) => done,
            Err(_) => return html_page(StatusCode::OK, layout::computing(&view)),
        },
        None => both.await,
    };
    let current =
        current.unwrap_or_else(|error| Err(crate::error::ApiError::internal("computing the report failed", error)));
    let current = match current {
        Ok(report) => report,
        Err(error) => {
            return problem(error.status, "The figures are not ready", &error.message, &format!("/sites/{site}/"))
        }
    };
    if let Some(table) = csv_table {
        return match upshot_dashboard::csv(&page, &view, &current, &table) {
            Some(csv) => {
                let disposition =
                    format!("attachment; filename=\"{}-{}-{}-{}.csv\"", record.site, table, view.from, view.to);
                let mut response = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response();
                if let Ok(value) = HeaderValue::from_str(&disposition) {
                    response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
                }
                response
            }
            None => problem(StatusCode::NOT_FOUND, "No such table", "That table is not on this page.", "/"),
        };
    }
    match upshot_dashboard::render(&page, &view, &current, previous.as_deref()) {
        Some(html) => html_page(StatusCode::OK, html),
        None => problem(
            StatusCode::NOT_FOUND,
            "No such placement in this range",
            "The placement had no events in the chosen range; pick a longer one.",
            &view.href(&view.site_path("placements"), &[]),
        ),
    }
}

/// A site's dashboard counts as looked at for this long after a visit.
const VISITED_SECONDS: u64 = 24 * 3600;

/// Notes a visit to the site's dashboard; whether it had not been visited recently.
fn note_visit(state: &AppState, site: &str) -> bool {
    let mut visits = state.dashboard_visits.lock().expect("no thread panics while holding the visits");
    !is_recent(visits.insert(site.to_string(), Instant::now()))
}

fn is_recent(visit: Option<Instant>) -> bool {
    visit.is_some_and(|when| when.elapsed() < Duration::from_secs(VISITED_SECONDS))
}

fn site_today(record: &SiteRecord) -> jiff::civil::Date {
    upshot_model::site::validate_time_zone(&record.timezone)
        .map(|zone| jiff::Timestamp::now().to_zoned(zone).date())
        .unwrap_or_else(|_| jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date())
}
