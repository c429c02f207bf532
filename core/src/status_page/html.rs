//! The page and one incident's page as HTML: no JavaScript, no external resource,
//! inline CSS that reads at 390 px and on a desktop. Every text is escaped here.

use std::fmt::Write as _;

use super::model::{PublicIncident, Snapshot};
use crate::timefmt::date_time;

/// Resolved incidents listed in the history (the page must stay under 50 KB).
const HISTORY_SHOWN: usize = 20;
/// Updates shown per incident on the front page (all are on its own page).
const UPDATES_SHOWN: usize = 3;
/// Characters of one update on the front page (in full on the incident's page).
const UPDATE_CHARS: usize = 280;
/// Open incidents shown with their updates; the others by title only.
const OPEN_IN_FULL: usize = 5;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => {}
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "body{margin:0;font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;\
color:#1f2328;background:#f6f8fa}main{max-width:860px;margin:0 auto;padding:16px}\
h1{font-size:1.5em;margin:.2em 0 .6em}h2{font-size:1.15em;margin:1.4em 0 .5em}\
.box{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:12px 14px;margin:0 0 10px;\
overflow-wrap:anywhere}.overall{font-weight:600;font-size:1.1em;color:#fff}\
.s-operational{background:#1a7f37}.s-degraded{background:#bf8700}.s-outage{background:#cf222e}\
.s-maintenance{background:#0969da}.row{display:flex;justify-content:space-between;gap:8px;flex-wrap:wrap}\
.st{font-weight:600}.t-operational{color:#1a7f37}.t-degraded{color:#9a6700}.t-outage{color:#cf222e}\
.t-maintenance{color:#0969da}.bar{display:flex;gap:1px;height:28px;margin-top:8px}\
.bar i{flex:1;border-radius:1px}.d{color:#57606a;font-size:.9em}ul{padding-left:1.1em;margin:.3em 0}\
a{color:#0969da}footer{color:#57606a;font-size:.85em;margin:2em 0}";

fn head(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{}</title><link rel=\"alternate\" type=\"application/atom+xml\" href=\"/feed.atom\">\
<style>{CSS}</style></head><body><main>",
        esc(title)
    );
}

fn foot(out: &mut String, s: &Snapshot) {
    let _ = write!(
        out,
        "<footer>Updated {} · <a href=\"/feed.atom\">Atom feed</a> · \
<a href=\"/status.json\">JSON</a></footer></main></body></html>",
        esc(&date_time(s.generated_ms))
    );
}

fn incident(out: &mut String, i: &PublicIncident, all: bool) {
    let _ = write!(
        out,
        "<div class=\"box\" id=\"{id}\"><div class=\"row\"><a href=\"/incidents/{id}\"><b>{title}</b></a>\
<span class=\"st\">{status}</span></div><div class=\"d\">{id} · {sev}",
        id = esc(&i.id),
        title = esc(&i.title),
        status = esc(&i.status),
        sev = esc(&i.severity),
    );
    if !i.components.is_empty() {
        let _ = write!(out, " · {}", esc(&i.components.join(", ")));
    }
    out.push_str("</div><ul>");
    let skip = if all {
        0
    } else {
        i.updates.len().saturating_sub(UPDATES_SHOWN)
    };
    for u in i.updates.iter().rev().take(i.updates.len() - skip) {
        let _ = write!(
            out,
            "<li><b>{}</b> <span class=\"d\">{}</span><br>{}</li>",
            esc(&u.status),
            esc(&date_time(u.at_ms)),
            esc(&if all {
                u.text.clone()
            } else {
                crate::chat::truncate(&u.text, UPDATE_CHARS)
            })
        );
    }
    out.push_str("</ul></div>");
}

/// `GET /`.
pub fn page(s: &Snapshot) -> String {
    let mut out = String::with_capacity(16 * 1024);
    head(&mut out, &s.title);
    let overall = s.overall();
    let _ = write!(
        out,
        "<h1>{}</h1><div class=\"box overall s-{}\" id=\"overall\" data-state=\"{}\">{}</div>",
        esc(&s.title),
        overall.as_str(),
        overall.as_str(),
        overall.overall()
    );
    if !s.open.is_empty() {
        out.push_str("<h2>Open incidents</h2>");
        for (k, i) in s.open.iter().enumerate() {
            if k < OPEN_IN_FULL {
                incident(&mut out, i, false);
            } else {
                let _ = write!(
                    out,
                    "<div class=\"box\"><a href=\"/incidents/{id}\">{title}</a> <span class=\"d\">{id} · {st}</span></div>",
                    id = esc(&i.id),
                    title = esc(&i.title),
                    st = esc(&i.status)
                );
            }
        }
    }
    if !s.maintenance.is_empty() {
        out.push_str("<h2>Maintenance</h2>");
        for w in &s.maintenance {
            let _ = write!(
                out,
                "<div class=\"box\"><div class=\"row\"><b>{}</b><span class=\"st t-maintenance\">{}</span></div>\
<div class=\"d\">{} to {}</div>{}</div>",
                esc(&w.components.join(", ")),
                if w.active { "In progress" } else { "Scheduled" },
                esc(&date_time(w.starts_ms)),
                esc(&date_time(w.ends_ms)),
                esc(&w.reason)
            );
        }
    }
    out.push_str("<h2>Components</h2>");
    for c in &s.components {
        let _ = write!(
            out,
            "<div class=\"box comp\" data-component=\"{n}\" data-state=\"{st}\"><div class=\"row\">\
<b>{n}</b><span class=\"st t-{st}\">{label}</span></div>",
            n = esc(&c.name),
            st = c.state.as_str(),
            label = c.state.label()
        );
        if !c.description.is_empty() {
            let _ = write!(out, "<div class=\"d\">{}</div>", esc(&c.description));
        }
        if !c.days.is_empty() {
            out.push_str("<div class=\"bar\">");
            // Runs of days in one state share a segment: a 90-day bar is a few
            // elements, not 90, so many components stay within the size budget.
            let mut k = 0;
            while k < c.days.len() {
                let d = &c.days[k];
                let run = c.days[k..]
                    .iter()
                    .take_while(|x| x.state == d.state)
                    .count();
                let last = &c.days[k + run - 1];
                let _ = write!(
                    out,
                    "<i class=\"s-{}\" style=\"flex:{run}\" title=\"{}{}{}: {}\"></i>",
                    d.state.as_str(),
                    esc(&d.date),
                    if run > 1 { " to " } else { "" },
                    if run > 1 {
                        esc(&last.date)
                    } else {
                        String::new()
                    },
                    d.state.as_str()
                );
                k += run;
            }
            let _ = write!(out, "</div><div class=\"d\">{} days</div>", c.days.len());
        }
        out.push_str("</div>");
    }
    out.push_str("<h2>Past incidents</h2>");
    if s.history.is_empty() {
        out.push_str("<div class=\"box d\">No incidents reported.</div>");
    }
    let mut day = String::new();
    for i in s.history.iter().take(HISTORY_SHOWN) {
        let d = date_time(i.opened_ms).chars().take(10).collect::<String>();
        if d != day {
            let _ = write!(out, "<h3 class=\"d\">{}</h3>", esc(&d));
            day = d;
        }
        let _ = write!(
            out,
            "<div class=\"box\"><a href=\"/incidents/{id}\">{title}</a> <span class=\"d\">{id} · resolved</span></div>",
            id = esc(&i.id),
            title = esc(&i.title)
        );
    }
    if s.subscribe {
        subscribe_form(&mut out);
    }
    foot(&mut out, s);
    out
}

/// Email subscriptions (double opt-in): a plain form, no script; the listener
/// answers `POST /subscribe` (`bot/src/status_forms.rs`).
fn subscribe_form(out: &mut String) {
    out.push_str(
        "<h2>Subscribe</h2><form class=\"box\" id=\"subscribe\" method=\"post\" action=\"/subscribe\">\
<label for=\"email\">Get an email for every update</label><div class=\"row\">\
<input id=\"email\" name=\"email\" type=\"email\" required maxlength=\"254\" autocomplete=\"email\" \
placeholder=\"you@example.com\" style=\"flex:1;min-width:12em;font:inherit;padding:6px\">\
<button type=\"submit\" style=\"font:inherit;padding:6px 14px\">Subscribe</button></div>\
<div class=\"d\">We send a link to confirm first. Every mail has an unsubscribe link.</div></form>",
    );
}

/// `GET /incidents/INC-7`.
pub fn incident_page(s: &Snapshot, i: &PublicIncident) -> String {
    let mut out = String::with_capacity(4 * 1024);
    head(&mut out, &format!("{} · {}", i.title, s.title));
    let _ = write!(
        out,
        "<p><a href=\"/\">← {}</a></p><h1>{}</h1>",
        esc(&s.title),
        esc(&i.title)
    );
    incident(&mut out, i, true);
    foot(&mut out, s);
    out
}
