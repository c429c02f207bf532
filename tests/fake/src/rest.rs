//! The REST API under `/api/v10`: routing, auth, fault injection, rate limits, body
//! parsing and the per-route handlers.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State as AxumState};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use serde_json::{json, Value};

use crate::error::{ApiError, FormErrors, ViolationKind};
use crate::limits::{MAX_FILE_SIZE, MAX_REQUEST_SIZE};
use crate::model;
use crate::ratelimit::{Scope, Verdict};
use crate::state::{Incoming, State, Upload};
use crate::{gateway, FaultRule, RequestRecord, Shared};

/// Bodies are buffered up to this size so that oversize requests get Discord's 413
/// (counted) instead of a bare connection error.
const BODY_BUFFER_LIMIT: usize = 2 * MAX_REQUEST_SIZE;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/gateway", get(gateway::upgrade))
        .route("/gateway/", get(gateway::upgrade))
        .route(
            "/attachments/{channel}/{attachment}/{filename}",
            get(attachment),
        )
        .fallback(handle)
        .layer(DefaultBodyLimit::max(BODY_BUFFER_LIMIT))
        .with_state(shared)
}

/// Where `@original` or a message id points on webhook-token message routes.
type Target = Option<u64>;

#[derive(Debug)]
enum Route {
    Gateway {
        bot: bool,
    },
    Application,
    CurrentUser,
    CreateDm,
    Commands {
        app: u64,
        guild: Option<u64>,
    },
    Callback {
        interaction: u64,
        token: String,
    },
    Followup {
        app: u64,
        token: String,
    },
    WebhookMessage {
        app: u64,
        token: String,
        target: Target,
    },
    Messages {
        channel: u64,
    },
    Message {
        channel: u64,
        message: u64,
    },
    MessageThread {
        channel: u64,
        message: u64,
    },
    Threads {
        channel: u64,
    },
    OwnReaction {
        channel: u64,
        message: u64,
        emoji: String,
    },
    Channel {
        channel: u64,
    },
    Guild {
        guild: u64,
    },
    GuildMember {
        guild: u64,
        user: u64,
    },
    GuildRoles {
        guild: u64,
    },
    GuildMemberRole {
        guild: u64,
        user: u64,
        role: u64,
    },
    GuildChannels {
        guild: u64,
    },
}

/// A matched route with its rate-limit bucket and policies.
struct Matched {
    route: Route,
    /// `METHOD /path/{with}/{placeholders}`: the bucket.
    template: String,
    /// The major parameter (channel, guild, webhook token) the bucket is split by.
    major: String,
    auth: bool,
    global: bool,
}

fn snowflake(s: &str) -> Option<u64> {
    s.parse().ok()
}

/// Percent-decodes a path segment (reaction emoji arrive URL-encoded).
fn decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn match_route(method: &Method, path: &str) -> Option<Matched> {
    let rest = path.strip_prefix("/api/v10/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    let m = method.as_str();
    let plain = |route: Route, template: &str, major: String| Matched {
        route,
        template: format!("{m} {template}"),
        major,
        auth: true,
        global: true,
    };
    let matched = match (m, segments.as_slice()) {
        ("GET", ["gateway"]) => Matched {
            auth: false,
            ..plain(Route::Gateway { bot: false }, "/gateway", String::new())
        },
        ("GET", ["gateway", "bot"]) => {
            plain(Route::Gateway { bot: true }, "/gateway/bot", String::new())
        }
        ("GET", ["oauth2", "applications", "@me"]) => plain(
            Route::Application,
            "/oauth2/applications/@me",
            String::new(),
        ),
        ("GET", ["users", "@me"]) => plain(Route::CurrentUser, "/users/@me", String::new()),
        ("POST", ["users", "@me", "channels"]) => {
            plain(Route::CreateDm, "/users/@me/channels", String::new())
        }
        ("GET" | "PUT", ["applications", app, "commands"]) => plain(
            Route::Commands {
                app: snowflake(app)?,
                guild: None,
            },
            "/applications/{application_id}/commands",
            app.to_string(),
        ),
        ("GET" | "PUT", ["applications", app, "guilds", guild, "commands"]) => plain(
            Route::Commands {
                app: snowflake(app)?,
                guild: Some(snowflake(guild)?),
            },
            "/applications/{application_id}/guilds/{guild_id}/commands",
            guild.to_string(),
        ),
        // Interaction routes need no auth and are exempt from the global limit.
        ("POST", ["interactions", id, token, "callback"]) => Matched {
            auth: false,
            global: false,
            ..plain(
                Route::Callback {
                    interaction: snowflake(id)?,
                    token: token.to_string(),
                },
                "/interactions/{interaction_id}/{token}/callback",
                id.to_string(),
            )
        },
        ("POST", ["webhooks", app, token]) => Matched {
            auth: false,
            global: false,
            ..plain(
                Route::Followup {
                    app: snowflake(app)?,
                    token: token.to_string(),
                },
                "/webhooks/{application_id}/{token}",
                format!("{app}/{token}"),
            )
        },
        ("GET" | "PATCH" | "DELETE", ["webhooks", app, token, "messages", target]) => Matched {
            auth: false,
            global: false,
            ..plain(
                Route::WebhookMessage {
                    app: snowflake(app)?,
                    token: token.to_string(),
                    target: match *target {
                        "@original" => None,
                        id => Some(snowflake(id)?),
                    },
                },
                "/webhooks/{application_id}/{token}/messages/{message_id}",
                format!("{app}/{token}"),
            )
        },
        ("GET" | "POST", ["channels", c, "messages"]) => plain(
            Route::Messages {
                channel: snowflake(c)?,
            },
            "/channels/{channel_id}/messages",
            c.to_string(),
        ),
        ("GET" | "PATCH" | "DELETE", ["channels", c, "messages", id]) => plain(
            Route::Message {
                channel: snowflake(c)?,
                message: snowflake(id)?,
            },
            "/channels/{channel_id}/messages/{message_id}",
            c.to_string(),
        ),
        ("POST", ["channels", c, "messages", id, "threads"]) => plain(
            Route::MessageThread {
                channel: snowflake(c)?,
                message: snowflake(id)?,
            },
            "/channels/{channel_id}/messages/{message_id}/threads",
            c.to_string(),
        ),
        ("POST", ["channels", c, "threads"]) => plain(
            Route::Threads {
                channel: snowflake(c)?,
            },
            "/channels/{channel_id}/threads",
            c.to_string(),
        ),
        ("PUT" | "DELETE", ["channels", c, "messages", id, "reactions", emoji, "@me"]) => plain(
            Route::OwnReaction {
                channel: snowflake(c)?,
                message: snowflake(id)?,
                emoji: decode(emoji)?,
            },
            "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
            c.to_string(),
        ),
        ("GET", ["channels", c]) => plain(
            Route::Channel {
                channel: snowflake(c)?,
            },
            "/channels/{channel_id}",
            c.to_string(),
        ),
        ("POST", ["guilds", g, "channels"]) => plain(
            Route::GuildChannels {
                guild: snowflake(g)?,
            },
            "/guilds/{guild_id}/channels",
            g.to_string(),
        ),
        ("GET", ["guilds", g]) => plain(
            Route::Guild {
                guild: snowflake(g)?,
            },
            "/guilds/{guild_id}",
            g.to_string(),
        ),
        ("GET", ["guilds", g, "members", u]) => plain(
            Route::GuildMember {
                guild: snowflake(g)?,
                user: snowflake(u)?,
            },
            "/guilds/{guild_id}/members/{user_id}",
            g.to_string(),
        ),
        ("PUT" | "DELETE", ["guilds", g, "members", u, "roles", r]) => plain(
            Route::GuildMemberRole {
                guild: snowflake(g)?,
                user: snowflake(u)?,
                role: snowflake(r)?,
            },
            "/guilds/{guild_id}/members/{user_id}/roles/{role_id}",
            g.to_string(),
        ),
        ("GET", ["guilds", g, "roles"]) => plain(
            Route::GuildRoles {
                guild: snowflake(g)?,
            },
            "/guilds/{guild_id}/roles",
            g.to_string(),
        ),
        _ => return None,
    };
    Some(matched)
}

/// The answer of a handler.
enum Reply {
    Json(Value),
    NoContent,
}

fn respond(status: StatusCode, body: Option<&Value>, mut headers: HeaderMap) -> Response {
    let mut response = match body {
        Some(body) => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            (status, body.to_string()).into_response()
        }
        None => status.into_response(),
    };
    response.headers_mut().extend(headers);
    response
}

fn rate_limited_body(retry_after: Duration, global: bool) -> Value {
    // Three decimals, as Discord sends it.
    let secs = (retry_after.as_secs_f64() * 1000.0).ceil() / 1000.0;
    json!({ "message": "You are being rate limited.", "retry_after": secs, "global": global })
}

/// Parses a body into JSON plus uploaded files, enforcing the size limits (413).
async fn parse_body(headers: &HeaderMap, body: Bytes) -> Result<Incoming, ApiError> {
    if body.len() > MAX_REQUEST_SIZE {
        return Err(ApiError::too_large().counted(
            ViolationKind::TooLarge,
            format!(
                "request body of {} bytes (limit {MAX_REQUEST_SIZE})",
                body.len()
            ),
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("multipart/form-data") {
        return parse_multipart(content_type, body).await;
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Incoming::default());
    }
    let json = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid_json().counted(
            ViolationKind::InvalidBody,
            format!("malformed JSON body: {e}"),
        )
    })?;
    Ok(Incoming {
        json,
        files: Vec::new(),
    })
}

async fn parse_multipart(content_type: &str, body: Bytes) -> Result<Incoming, ApiError> {
    let malformed = |e: multer::Error| {
        ApiError::new(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body").counted(
            ViolationKind::InvalidBody,
            format!("malformed multipart body: {e}"),
        )
    };
    let boundary = multer::parse_boundary(content_type).map_err(malformed)?;
    let stream = futures::stream::once(async move { Ok::<_, Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut payload: Option<Value> = None;
    let mut fields = serde_json::Map::new();
    let mut files = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_string();
        let filename = field.file_name().map(str::to_string);
        let part_type = field.content_type().map(|m| m.essence_str().to_string());
        let data = field.bytes().await.map_err(malformed)?;
        if name == "payload_json" {
            let json = serde_json::from_slice(&data).map_err(|e| {
                ApiError::invalid_json().counted(
                    ViolationKind::InvalidBody,
                    format!("malformed payload_json: {e}"),
                )
            })?;
            payload = Some(json);
        } else if filename.is_some() || name.starts_with("files[") || name == "file" {
            if data.len() > MAX_FILE_SIZE {
                return Err(ApiError::too_large().counted(
                    ViolationKind::TooLarge,
                    format!(
                        "file {name} of {} bytes (limit {MAX_FILE_SIZE})",
                        data.len()
                    ),
                ));
            }
            let index = name
                .strip_prefix("files[")
                .and_then(|n| n.strip_suffix(']'))
                .and_then(|n| n.parse().ok());
            files.push(Upload {
                index,
                filename: filename.unwrap_or_else(|| format!("file{}", files.len())),
                content_type: part_type,
                data,
            });
        } else {
            // Discord also accepts plain form fields instead of payload_json.
            let text = String::from_utf8_lossy(&data).into_owned();
            fields.insert(name, Value::String(text));
        }
    }
    let json = payload.unwrap_or(Value::Object(fields));
    Ok(Incoming { json, files })
}

/// What the pipeline needs to know about a request besides its body.
struct RequestInfo<'a> {
    method: &'a Method,
    path: &'a str,
    query: &'a str,
    headers: &'a HeaderMap,
    at: Instant,
}

/// Every `/api/v10` request goes through here. The work runs in its own task: like
/// Discord, the fake finishes a request whose client gave up waiting (a timeout),
/// so a retry meets the message the first attempt posted.
async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let task = tokio::spawn(handle_owned(shared, method, uri, headers, body));
    match task.await {
        Ok(r) => r,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn handle_owned(
    shared: Arc<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let body_size = body.len();
    // Parsed before taking the lock (multipart parsing is async); a parse error is
    // only reported after auth and rate limits, where Discord would report it.
    let incoming = parse_body(&headers, body).await;
    let hang = shared.lock().faults.iter().find_map(|f| match f {
        FaultRule::Hang {
            path_contains,
            until,
        } if *until > Instant::now() && uri.path().contains(path_contains.as_str()) => Some(*until),
        _ => None,
    });
    if let Some(until) = hang {
        tokio::time::sleep_until(until.into()).await;
    }
    let request = RequestInfo {
        method: &method,
        path: uri.path(),
        query: uri.query().unwrap_or_default(),
        headers: &headers,
        at,
    };
    let mut state = shared.lock();
    let (status, body, response_headers) = process(&mut state, &shared, &request, incoming);
    state.requests.push(RequestRecord {
        method: method.to_string(),
        path: request.path.to_string(),
        query: request.query.to_string(),
        status: status.as_u16(),
        at: request.at,
        body_size,
    });
    drop(state);
    shared.changed.notify_waiters();
    tracing::debug!("fake Discord: {method} {} -> {status}", request.path);
    respond(status, body.as_ref(), response_headers)
}

/// Route, auth, injected faults, rate limits, then the handler, in Discord's order.
fn process(
    state: &mut State,
    shared: &Shared,
    request: &RequestInfo<'_>,
    incoming: Result<Incoming, ApiError>,
) -> (StatusCode, Option<Value>, HeaderMap) {
    let RequestInfo {
        method,
        path,
        query,
        headers,
        at: now,
    } = *request;
    let fail = |state: &mut State, e: ApiError, verdict: &Verdict| {
        if let Some((kind, detail)) = e.violation {
            state.count(kind, format!("{method} {path}: {detail}"));
        }
        (e.status, Some(e.body), verdict.headers())
    };
    let Some(matched) = match_route(method, path) else {
        let verdict = state.ratelimits.peek("unknown", path, now);
        let e = ApiError::not_found_route()
            .counted(ViolationKind::UnknownRoute, "no such route in the fake");
        return fail(state, e, &verdict);
    };
    let peeked = state
        .ratelimits
        .peek(&matched.template, &matched.major, now);
    if matched.auth {
        let expected = format!("Bot {}", shared.cfg.token);
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if sent != Some(expected.as_str()) {
            let what = if sent.is_some() { "wrong" } else { "missing" };
            let e = ApiError::unauthorized().counted(
                ViolationKind::Unauthorized,
                format!("{what} Authorization header"),
            );
            return fail(state, e, &peeked);
        }
    }
    if let Some(status) = take_fault(state, path) {
        // Injected failures are Discord's fault, not the bot's: not counted.
        return if status == StatusCode::TOO_MANY_REQUESTS {
            let retry = Duration::from_secs(1);
            let verdict = peeked.refuse(Scope::Shared, retry);
            (
                status,
                Some(rate_limited_body(retry, false)),
                verdict.headers(),
            )
        } else {
            let message = format!(
                "{}: {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("Error")
            );
            (
                status,
                Some(json!({ "message": message, "code": 0 })),
                peeked.headers(),
            )
        };
    }
    let verdict = state
        .ratelimits
        .hit(&matched.template, &matched.major, matched.global, now);
    if let Some((scope, retry_after)) = verdict.limited {
        let global = scope == Scope::Global;
        let kind = if global {
            ViolationKind::GlobalRateLimited
        } else {
            ViolationKind::RateLimited
        };
        let limit = if global {
            "global".to_string()
        } else {
            format!("bucket {}", matched.template)
        };
        state.count(
            kind,
            format!("{method} {path}: {limit} exhausted, retry after {retry_after:?}"),
        );
        return (
            StatusCode::TOO_MANY_REQUESTS,
            Some(rate_limited_body(retry_after, global)),
            verdict.headers(),
        );
    }
    let result =
        incoming.and_then(|incoming| route(state, shared, method, matched.route, query, incoming));
    match result {
        Ok(Reply::Json(body)) => (StatusCode::OK, Some(body), verdict.headers()),
        Ok(Reply::NoContent) => (StatusCode::NO_CONTENT, None, verdict.headers()),
        Err(e) => fail(state, e, &verdict),
    }
}

/// Uses up one injected fault matching `path`, if any.
fn take_fault(state: &mut State, path: &str) -> Option<StatusCode> {
    let now = std::time::Instant::now();
    state.faults.retain(|f| match f {
        FaultRule::Status { times, .. } => *times > 0,
        FaultRule::Outage { until, .. } | FaultRule::Hang { until, .. } => *until > now,
    });
    let position = state.faults.iter().position(|f| match f {
        FaultRule::Status { path_contains, .. } | FaultRule::Outage { path_contains, .. } => {
            path.contains(path_contains.as_str())
        }
        FaultRule::Hang { .. } => false,
    })?;
    let status = match &mut state.faults[position] {
        FaultRule::Status { status, times, .. } => {
            *times -= 1;
            *status
        }
        FaultRule::Outage { status, .. } => *status,
        FaultRule::Hang { .. } => return None,
    };
    Some(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
}

fn route(
    state: &mut State,
    shared: &Shared,
    method: &Method,
    route: Route,
    query: &str,
    incoming: Incoming,
) -> Result<Reply, ApiError> {
    use Reply::{Json, NoContent};
    let m = method.as_str();
    Ok(match route {
        Route::Gateway { bot: false } => {
            Json(json!({ "url": gateway::gateway_url(&shared.api_url) }))
        }
        Route::Gateway { bot: true } => Json(json!({
            "url": gateway::gateway_url(&shared.api_url),
            "shards": 1,
            "session_start_limit": {
                "total": 1000, "remaining": 999, "reset_after": 86_400_000, "max_concurrency": 1
            },
        })),
        Route::Application => Json(model::application()),
        Route::CurrentUser => Json(model::bot_user()),
        Route::CreateDm => {
            let user = crate::limits::id_of(&incoming.json["recipient_id"]).ok_or_else(|| {
                FormErrors::one(
                    "recipient_id",
                    "BASE_TYPE_REQUIRED",
                    "This field is required",
                    "POST /users/@me/channels",
                )
            })?;
            let name = state
                .members
                .get(&user)
                .map_or_else(|| format!("user-{user}"), |(m, _)| m.username.clone());
            let channel = state.dm_channel(user, &name);
            Json(state.channel(channel)?.to_json())
        }
        Route::Commands { app, guild } if m == "PUT" => {
            Json(state.put_commands(app, guild, &incoming.json)?)
        }
        Route::Commands { app, guild } => Json(state.get_commands(app, guild)?),
        Route::Callback { interaction, token } => {
            state.callback(interaction, &token, incoming)?;
            NoContent
        }
        Route::Followup { app, token } => Json(state.followup(app, &token, incoming)?),
        Route::WebhookMessage { app, token, target } => {
            match state.webhook_message(app, &token, target, m, incoming)? {
                Some(message) => Json(message),
                None => NoContent,
            }
        }
        Route::Messages { channel } if m == "POST" => {
            Json(state.create_channel_message(channel, incoming)?)
        }
        Route::Messages { channel } => Json(state.list_messages(channel, query)?),
        Route::Message { channel, message } => match m {
            "GET" => {
                state.channel(channel)?;
                Json(state.message_json(state.message_in(channel, message, false)?))
            }
            "PATCH" => Json(state.edit_channel_message(channel, message, incoming)?),
            _ => {
                state.delete_channel_message(channel, message)?;
                NoContent
            }
        },
        Route::MessageThread { channel, message } => {
            Json(state.start_thread(channel, Some(message), &incoming.json)?)
        }
        Route::Threads { channel } => Json(state.start_thread(channel, None, &incoming.json)?),
        Route::OwnReaction {
            channel,
            message,
            emoji,
        } => {
            state.react(channel, message, &emoji, m == "PUT")?;
            NoContent
        }
        Route::Channel { channel } => {
            let json = state.channel(channel)?.to_json();
            Json(state.setup.channel(state.cfg.guild_id, channel, json)?)
        }
        Route::Guild { guild } => Json(state.guild(guild)?),
        Route::GuildMember { guild, user } => Json(state.guild_member(guild, user)?),
        Route::GuildRoles { guild } => Json(state.guild_roles(guild)?),
        Route::GuildMemberRole { guild, user, role } => {
            state.set_member_role(guild, user, role, m == "PUT")?;
            NoContent
        }
        Route::GuildChannels { guild } => Json(state.create_guild_channel(guild, &incoming.json)?),
    })
}

/// CDN stand-in for attachment URLs (not part of the API, not rate limited).
async fn attachment(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path((channel, attachment, _filename)): Path<(u64, u64, String)>,
) -> Response {
    match shared.lock().attachment(channel, attachment) {
        Some((content_type, data)) => {
            let mut response = Body::from(data).into_response();
            let content_type = content_type.unwrap_or_else(|| "application/octet-stream".into());
            if let Ok(value) = HeaderValue::from_str(&content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            response
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_serenity_paths() {
        let get = Method::GET;
        let m = match_route(&get, "/api/v10/channels/111/messages/5").unwrap();
        assert_eq!(
            m.template,
            "GET /channels/{channel_id}/messages/{message_id}"
        );
        assert_eq!(m.major, "111");
        let m = match_route(
            &Method::PUT,
            "/api/v10/channels/1/messages/2/reactions/%E2%9C%85/@me",
        )
        .unwrap();
        assert!(matches!(m.route, Route::OwnReaction { ref emoji, .. } if emoji == "✅"));
        let m = match_route(&Method::POST, "/api/v10/interactions/5/tok/callback").unwrap();
        assert!(!m.auth && !m.global);
        assert!(match_route(&get, "/api/v10/channels/abc/messages").is_none());
        assert!(match_route(&get, "/api/v9/channels/1/messages").is_none());
        assert!(match_route(&Method::POST, "/api/v10/channels/1").is_none());
    }
}
