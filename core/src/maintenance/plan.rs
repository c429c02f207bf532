//! What is due for one window, decided without I/O: from the window's row, the
//! clock and the settings, the steps to take in order (announce, start, flag on,
//! end, flag off, release the held alerts with their summary, ...).
//!
//! Apart from [`run`](super::run), which performs the steps, so the rules (which
//! reminders, a late end after a restart, a window missed entirely) are read and
//! tested in one place. The plan assumes every step works; when one does not (a
//! chat post fails, a window changed under the step), the executor plans again from
//! the next [`Stage`] with the window as it really is, which is what the steps
//! after it would have seen.

use std::time::Duration;

use super::when;
use super::{Settings, Window, WindowState};
use crate::chat;
use crate::chat::Text;
use crate::store::maintenance::Mark;

/// An end applied this much after its planned time was missed (Klaxon was down).
pub(crate) const LATE_AFTER_MS: i64 = 120_000;
/// A step that failed (Discord refused a post, a flag did not switch) is tried
/// again this much later.
pub(crate) const RETRY_MS: i64 = 30_000;
/// How long after a window's end Klaxon keeps trying to clear a stuck flag.
pub(crate) const FLAG_RETRY_FOR_MS: i64 = 600_000;

/// The stages of one pass over a window, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// The first announcement of a scheduled window.
    Scheduled,
    /// Lead-time reminders.
    Leads,
    /// A scheduled window starts, or is closed because it passed while Klaxon was down.
    Transition,
    FlagOn,
    StartNotice,
    /// An active window ends on schedule.
    End,
    /// The new end of an extended window is announced.
    Extension,
    FlagOff,
    Summary,
    EndNotice,
}

impl Stage {
    pub const FIRST: Stage = Stage::Scheduled;

    /// The stage after this one, if any.
    pub fn after(self) -> Option<Stage> {
        use Stage::*;
        Some(match self {
            Scheduled => Leads,
            Leads => Transition,
            Transition => FlagOn,
            FlagOn => StartNotice,
            StartNotice => End,
            End => Extension,
            Extension => FlagOff,
            FlagOff => Summary,
            Summary => EndNotice,
            EndNotice => return None,
        })
    }
}

/// Which notice an announcement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Scheduled,
    Lead,
    Start,
    Extended,
    End,
}

impl Notice {
    /// What the log says when the post fails.
    pub fn failed(self) -> &'static str {
        match self {
            Notice::Scheduled => "scheduled window not announced",
            Notice::Lead => "maintenance reminder not posted",
            Notice::Start => "maintenance start not announced",
            Notice::Extended => "extension not announced",
            Notice::End => "maintenance end not announced",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A notice for stakeholders in the incidents channel; `key` makes its nonce.
    Announce {
        notice: Notice,
        key: String,
        text: Text,
    },
    /// A finished step, recorded on the window.
    Mark(Mark),
    /// These lead-time reminders are done (seconds before the start).
    LeadsDone(Vec<u64>),
    /// The whole window passed while Klaxon was down: closed, late, and never
    /// started (no flag, no start notice).
    CloseMissed {
        detail: String,
    },
    /// A scheduled window starts; `detail` for the audit row.
    Start {
        detail: String,
        timeline: String,
    },
    FlagOn,
    /// An active window ends on schedule.
    End {
        late: bool,
        detail: String,
        timeline: String,
    },
    /// `retry`: a flag that would not clear is tried again.
    FlagOff {
        retry: bool,
    },
    /// The held alerts are summarised and given back.
    Summary,
}

/// One step and the stage it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub stage: Stage,
    pub step: Step,
}

/// The steps due for `w` at `now`, from stage `from` on. `chat`: whether posting
/// is allowed (commands leave it to the scheduler, so a reply never waits on the
/// channel's rate limit, and a failed post stops the posts after it).
pub fn plan(w: &Window, now: i64, s: &Settings, chat: bool, from: Stage) -> Vec<Planned> {
    let mut w = w.clone();
    let tz = s.tz;
    let mut out = Vec::new();
    let mut push = |stage: Stage, step: Step| out.push(Planned { stage, step });
    let at = |stage: Stage| from <= stage;

    if w.state == WindowState::Scheduled {
        if at(Stage::Scheduled) && !w.scheduled_announced && chat {
            // A window that starts now is announced by its start.
            if w.starts_ms > now {
                push(
                    Stage::Scheduled,
                    Step::Announce {
                        notice: Notice::Scheduled,
                        key: "scheduled".into(),
                        text: scheduled_text(&w, tz).into(),
                    },
                );
            }
            push(Stage::Scheduled, Step::Mark(Mark::ScheduledAnnounced));
            w.scheduled_announced = true;
        }
        if at(Stage::Leads) {
            // Lead-time reminders: those that have come, and only those that were
            // still ahead when the window was scheduled (its first announcement
            // covers the rest). After downtime, one reminder for all missed leads.
            let due: Vec<u64> = s
                .leads
                .iter()
                .map(|d| d.as_secs())
                .filter(|l| !w.leads_done.contains(l))
                .filter(|l| w.starts_ms - (*l as i64) * 1_000 <= now)
                .collect();
            if !due.is_empty() && w.starts_ms > now && chat {
                let ahead: Vec<u64> = due
                    .iter()
                    .copied()
                    .filter(|l| w.starts_ms - w.created_ms > (*l as i64) * 1_000)
                    .collect();
                if !ahead.is_empty() {
                    let smallest = ahead.iter().min().copied().unwrap_or_default();
                    push(
                        Stage::Leads,
                        Step::Announce {
                            notice: Notice::Lead,
                            key: format!("lead-{smallest}"),
                            text: lead_text(&w, now, tz),
                        },
                    );
                }
                let mut done = w.leads_done.clone();
                done.extend(due);
                push(Stage::Leads, Step::LeadsDone(done));
            }
        }
        if at(Stage::Transition) {
            if w.ends_ms <= now {
                let detail = format!(
                    "missed: it was planned for {} while Klaxon was not running",
                    when::span_text(w.starts_ms, w.ends_ms, tz)
                );
                push(Stage::Transition, Step::CloseMissed { detail });
                w.state = WindowState::Ended;
                w.started_ms = Some(w.starts_ms);
                w.ended_ms = Some(now);
                w.late = true;
            } else if w.starts_ms <= now {
                let detail = if now - w.starts_ms > LATE_AFTER_MS {
                    format!(
                        "started late, planned for {}",
                        when::time_text(w.starts_ms, now, tz)
                    )
                } else {
                    String::new()
                };
                let timeline = format!(
                    "Maintenance #{} started on {} until {}: {}",
                    w.id,
                    w.services_text(),
                    when::time_text(w.ends_ms, now, tz),
                    w.reason
                );
                push(Stage::Transition, Step::Start { detail, timeline });
                w.state = WindowState::Active;
                w.started_ms = Some(now);
            }
        }
    }

    if w.state == WindowState::Active {
        if at(Stage::FlagOn) {
            // A failed switch is tried again, every RETRY_MS while the window runs.
            let retry_on = w.flag_state == "failed-on" && now - w.flag_tried_ms >= RETRY_MS;
            if w.flag && (w.flag_state.is_empty() || retry_on) {
                push(Stage::FlagOn, Step::FlagOn);
                w.flag_state = "on".into();
            }
        }
        if at(Stage::StartNotice) && !w.start_announced && chat {
            push(
                Stage::StartNotice,
                Step::Announce {
                    notice: Notice::Start,
                    key: "start".into(),
                    text: start_text(&w, now, tz).into(),
                },
            );
            push(Stage::StartNotice, Step::Mark(Mark::StartAnnounced));
            w.start_announced = true;
        }
        if at(Stage::End) && w.ends_ms <= now {
            let late = now - w.ends_ms > LATE_AFTER_MS;
            let detail = if late {
                format!(
                    "ended late: planned for {}, Klaxon was not running then",
                    when::time_text(w.ends_ms, now, tz)
                )
            } else {
                String::new()
            };
            let timeline = format!(
                "Maintenance #{} ended{}",
                w.id,
                if late {
                    format!(" ({detail})")
                } else {
                    String::new()
                }
            );
            push(
                Stage::End,
                Step::End {
                    late,
                    detail,
                    timeline,
                },
            );
            w.state = WindowState::Ended;
            w.ended_ms = Some(now);
            w.ended_by = Some("schedule".into());
            w.late = late;
        }
    }

    // After the start notice, so stakeholders read them in order; a window that
    // ended meanwhile is covered by its end notice.
    if let (Some(from_ms), true, true) = (w.extended_from_ms, chat, at(Stage::Extension)) {
        if matches!(w.state, WindowState::Scheduled | WindowState::Active) {
            push(
                Stage::Extension,
                Step::Announce {
                    notice: Notice::Extended,
                    key: format!("extend{}", w.ends_ms / 1_000),
                    text: extended_text(&w, from_ms, now, tz).into(),
                },
            );
        }
        push(Stage::Extension, Step::Mark(Mark::ExtensionAnnounced));
    }

    if matches!(w.state, WindowState::Ended | WindowState::Cancelled) {
        if at(Stage::FlagOff) {
            // A flag that would not clear is tried again for a while: the service
            // answers 503 until it is.
            let retry = w.flag_state == "failed-off"
                && now - w.flag_tried_ms >= RETRY_MS
                && now - w.ended_ms.unwrap_or(now) < FLAG_RETRY_FOR_MS;
            if w.flag && (matches!(w.flag_state.as_str(), "on" | "failed-on") || retry) {
                push(Stage::FlagOff, Step::FlagOff { retry });
                w.flag_state = "off".into();
            }
        }
        if at(Stage::Summary) && !w.summary_posted && chat {
            push(Stage::Summary, Step::Summary);
            w.summary_posted = true;
        }
        if at(Stage::EndNotice) && !w.end_announced && chat {
            push(
                Stage::EndNotice,
                Step::Announce {
                    notice: Notice::End,
                    key: "end".into(),
                    text: end_text(&w, now, tz).into(),
                },
            );
            push(Stage::EndNotice, Step::Mark(Mark::EndAnnounced));
        }
    }
    out
}

fn plural(w: &Window) -> &'static str {
    if w.services.len() == 1 {
        ""
    } else {
        "s"
    }
}

fn scheduled_text(w: &Window, tz: chrono_tz::Tz) -> String {
    format!(
        "🔧 **Planned maintenance: {}**\n{} · about {}\n{}\nThe service{} may be \
         unavailable or slower than usual during this time. We will post here when \
         the work starts and when it is over. · maintenance #{}",
        chat::neutralize(&w.services_text()),
        when::span_text(w.starts_ms, w.ends_ms, tz),
        when::human(Duration::from_millis((w.ends_ms - w.starts_ms) as u64)),
        chat::neutralize(&w.reason),
        plural(w),
        w.id
    )
}

fn lead_text(w: &Window, now: i64, tz: chrono_tz::Tz) -> Text {
    Text::from(format!(
        "⏰ **Reminder: maintenance on {} starts ",
        chat::neutralize(&w.services_text()),
    ))
    .with(when::relative(w.starts_ms))
    .with(format!(
        "** ({}).\nPlanned until {}. {} · maintenance #{}",
        when::time_text(w.starts_ms, now, tz),
        when::time_text(w.ends_ms, now, tz),
        chat::neutralize(&w.reason),
        w.id
    ))
}

fn start_text(w: &Window, now: i64, tz: chrono_tz::Tz) -> String {
    format!(
        "🔧 **Maintenance has started: {}**\nPlanned until {} (about {}).\n{}\nThe \
         service{} may be unavailable until then. We will post here when it is over. · \
         maintenance #{}",
        chat::neutralize(&w.services_text()),
        when::time_text(w.ends_ms, now, tz),
        when::human(Duration::from_millis((w.ends_ms - now).max(0) as u64)),
        chat::neutralize(&w.reason),
        plural(w),
        w.id
    )
}

fn extended_text(w: &Window, from_ms: i64, now: i64, tz: chrono_tz::Tz) -> String {
    format!(
        "🔧 **Maintenance on {} extended** by {}: now until {}.\n{} · maintenance #{}",
        chat::neutralize(&w.services_text()),
        when::human(Duration::from_millis((w.ends_ms - from_ms).max(0) as u64)),
        when::time_text(w.ends_ms, now, tz),
        chat::neutralize(&w.reason),
        w.id
    )
}

fn end_text(w: &Window, now: i64, tz: chrono_tz::Tz) -> String {
    if w.state == WindowState::Cancelled {
        return format!(
            "❎ **Planned maintenance cancelled: {}**\nThe work planned for {} will not \
             happen then. · maintenance #{}",
            chat::neutralize(&w.services_text()),
            when::span_text(w.starts_ms, w.ends_ms, tz),
            w.id
        );
    }
    let ended = w.ended_ms.unwrap_or(now);
    let took = Duration::from_millis((ended - w.started_ms.unwrap_or(w.starts_ms)).max(0) as u64);
    let how = if w.late {
        format!(
            "It was planned to end at {}; Klaxon was offline then, so this notice \
             comes late (recorded {}).",
            when::time_text(w.ends_ms, now, tz),
            when::time_text(ended, now, tz)
        )
    } else if ended + 60_000 < w.ends_ms {
        format!(
            "Finished early, after {} (planned until {}).",
            when::human(took),
            when::time_text(w.ends_ms, now, tz)
        )
    } else {
        format!("It took {}.", when::human(took))
    };
    format!(
        "✅ **Maintenance is over: {}**{}\n{how}\nThe work on {} is finished; if \
         something still looks wrong, tell us here. · maintenance #{}",
        chat::neutralize(&w.services_text()),
        if w.late { " (late notice)" } else { "" },
        if w.services.len() == 1 { "it" } else { "them" },
        w.id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    /// 2026-12-01 12:00 UTC.
    const NOON: i64 = 1_796_126_400_000;

    fn settings() -> Settings {
        Settings {
            tz: chrono_tz::Tz::UTC,
            leads: vec![Duration::from_secs(48 * 3_600), Duration::from_secs(3_600)],
            max: Duration::from_secs(86_400),
            tick: Duration::from_secs(5),
        }
    }

    /// A window of `api` from `starts` to `ends`, created at `created`, with no
    /// step done yet.
    fn window(created: i64, starts: i64, ends: i64) -> Window {
        Window {
            id: 7,
            services: vec!["api".into()],
            all_services: false,
            reason: "database upgrade".into(),
            flag: false,
            created_by: "ana".into(),
            created_ms: created,
            starts_ms: starts,
            ends_ms: ends,
            state: WindowState::Scheduled,
            started_ms: None,
            ended_ms: None,
            ended_by: None,
            late: false,
            leads_done: Vec::new(),
            scheduled_announced: false,
            start_announced: false,
            end_announced: false,
            summary_posted: false,
            flag_state: String::new(),
            flag_detail: String::new(),
            flag_tried_ms: 0,
            held: 0,
            retry_ms: 0,
            extended_from_ms: None,
        }
    }

    fn steps(w: &Window, now: i64, chat: bool) -> Vec<Step> {
        plan(w, now, &settings(), chat, Stage::FIRST)
            .into_iter()
            .map(|p| p.step)
            .collect()
    }

    fn announced(steps: &[Step]) -> Vec<(Notice, &str)> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Announce { notice, key, .. } => Some((*notice, key.as_str())),
                _ => None,
            })
            .collect()
    }

    /// The notice as Discord shows it.
    fn text_of(steps: &[Step], which: Notice) -> String {
        steps
            .iter()
            .find_map(|s| match s {
                Step::Announce { notice, text, .. } if *notice == which => {
                    Some(chat::discord::text(text))
                }
                _ => None,
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_new_window_is_announced_and_no_lead_that_had_passed_is_reminded() {
        // Scheduled 30 minutes ahead: the 1h and 48h leads were never ahead.
        let w = window(NOON, NOON + 30 * MIN, NOON + 2 * HOUR);
        let s = steps(&w, NOON, true);
        assert_eq!(announced(&s), [(Notice::Scheduled, "scheduled")]);
        assert!(s.contains(&Step::Mark(Mark::ScheduledAnnounced)));
        // Both leads count as done, without a reminder.
        assert!(s.contains(&Step::LeadsDone(vec![172_800, 3_600])));
    }

    #[test]
    fn a_lead_still_ahead_is_reminded_once_for_all_missed_leads() {
        // Scheduled three days ahead; Klaxon was down through both leads.
        let mut w = window(NOON - 3 * 24 * HOUR, NOON + 50 * MIN, NOON + 2 * HOUR);
        w.scheduled_announced = true;
        let s = steps(&w, NOON, true);
        assert_eq!(announced(&s), [(Notice::Lead, "lead-3600")]);
        let lead = text_of(&s, Notice::Lead);
        assert!(
            lead.starts_with("⏰ **Reminder: maintenance on api starts <t:"),
            "{lead}"
        );
        assert!(s.contains(&Step::LeadsDone(vec![172_800, 3_600])));
        // Done leads are not reminded again.
        w.leads_done = vec![172_800, 3_600];
        assert!(steps(&w, NOON, true).is_empty());
    }

    #[test]
    fn a_window_whose_start_has_come_starts_and_switches_its_flag_on() {
        let mut w = window(NOON - HOUR, NOON, NOON + HOUR);
        w.flag = true;
        w.scheduled_announced = true;
        w.leads_done = vec![172_800, 3_600];
        let s = steps(&w, NOON + 10_000, true);
        assert!(matches!(&s[0], Step::Start { detail, .. } if detail.is_empty()));
        assert_eq!(s[1], Step::FlagOn);
        assert_eq!(announced(&s), [(Notice::Start, "start")]);
        assert_eq!(s[3], Step::Mark(Mark::StartAnnounced));
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn commands_change_windows_but_leave_the_posts_to_the_scheduler() {
        let mut w = window(NOON, NOON, NOON + HOUR);
        w.flag = true;
        let s = steps(&w, NOON, false);
        assert!(announced(&s).is_empty());
        assert!(matches!(s[0], Step::Start { .. }));
        assert_eq!(s[1], Step::FlagOn);
        assert_eq!(s.len(), 2, "{s:?}");
    }

    #[test]
    fn an_end_missed_while_down_is_applied_with_a_late_notice() {
        let mut w = window(NOON - 2 * HOUR, NOON - HOUR, NOON - 10 * MIN);
        w.state = WindowState::Active;
        w.started_ms = Some(NOON - HOUR);
        w.scheduled_announced = true;
        w.start_announced = true;
        w.flag = true;
        w.flag_state = "on".into();
        let s = steps(&w, NOON, true);
        assert!(matches!(&s[0], Step::End { late: true, detail, .. }
            if detail.starts_with("ended late: planned for")));
        assert_eq!(s[1], Step::FlagOff { retry: false });
        assert_eq!(s[2], Step::Summary);
        let end = text_of(&s, Notice::End);
        assert!(end.contains("(late notice)"), "{end}");
        assert!(end.contains("Klaxon was offline then"), "{end}");
        // On time (within two minutes), it is not late.
        let s = steps(&w, NOON - 9 * MIN, true);
        assert!(matches!(&s[0], Step::End { late: false, .. }));
        assert!(text_of(&s, Notice::End).contains("It took 51 min."));
    }

    #[test]
    fn a_window_that_passed_entirely_while_down_is_closed_without_its_flag() {
        let mut w = window(NOON - 3 * HOUR, NOON - 2 * HOUR, NOON - HOUR);
        w.flag = true;
        w.scheduled_announced = true;
        w.leads_done = vec![172_800, 3_600];
        let s = steps(&w, NOON, true);
        assert!(matches!(&s[0], Step::CloseMissed { detail } if detail.starts_with("missed:")));
        assert!(!s
            .iter()
            .any(|s| matches!(s, Step::FlagOn | Step::FlagOff { .. })));
        assert_eq!(announced(&s), [(Notice::End, "end")]);
        assert!(s.contains(&Step::Summary));
        assert!(text_of(&s, Notice::End).contains("(late notice)"));
    }

    #[test]
    fn an_extension_is_announced_once_to_those_told() {
        let mut w = window(NOON - HOUR, NOON - 30 * MIN, NOON + 90 * MIN);
        w.state = WindowState::Active;
        w.started_ms = Some(NOON - 30 * MIN);
        w.scheduled_announced = true;
        w.start_announced = true;
        w.extended_from_ms = Some(NOON + 30 * MIN);
        let s = steps(&w, NOON, true);
        let key = format!("extend{}", (NOON + 90 * MIN) / 1_000);
        assert_eq!(announced(&s), [(Notice::Extended, key.as_str())]);
        assert!(text_of(&s, Notice::Extended).contains("extended** by 1 h"));
        assert_eq!(s.last(), Some(&Step::Mark(Mark::ExtensionAnnounced)));
        // Commands do not post it.
        assert!(steps(&w, NOON, false).is_empty());
        // A window that ended meanwhile: its end notice covers the extension.
        w.state = WindowState::Ended;
        w.ended_ms = Some(NOON);
        w.summary_posted = true;
        w.end_announced = true;
        assert_eq!(
            steps(&w, NOON, true),
            [Step::Mark(Mark::ExtensionAnnounced)]
        );
    }

    #[test]
    fn a_cancelled_window_is_called_off_where_it_was_announced() {
        let mut w = window(NOON - HOUR, NOON + HOUR, NOON + 2 * HOUR);
        w.state = WindowState::Cancelled;
        w.ended_ms = Some(NOON);
        w.scheduled_announced = true;
        w.summary_posted = true;
        let s = steps(&w, NOON, true);
        assert_eq!(announced(&s), [(Notice::End, "end")]);
        assert!(text_of(&s, Notice::End).starts_with("❎ **Planned maintenance cancelled: api**"));
        assert!(!s.contains(&Step::Summary));
        // Announced nowhere: `cancel` marks the end announced, nothing is left.
        w.end_announced = true;
        assert!(steps(&w, NOON, true).is_empty());
    }

    #[test]
    fn failed_flag_switches_are_tried_again_after_a_while() {
        let mut w = window(NOON - HOUR, NOON - HOUR, NOON + HOUR);
        w.state = WindowState::Active;
        w.start_announced = true;
        w.flag = true;
        w.flag_state = "failed-on".into();
        w.flag_tried_ms = NOON - 10_000;
        assert!(steps(&w, NOON, true).is_empty());
        w.flag_tried_ms = NOON - RETRY_MS;
        assert_eq!(steps(&w, NOON, true), [Step::FlagOn]);
        // A flag that would not clear: tried again for ten minutes after the end.
        w.state = WindowState::Ended;
        w.ended_ms = Some(NOON - 5 * MIN);
        w.summary_posted = true;
        w.end_announced = true;
        w.flag_state = "failed-off".into();
        assert_eq!(steps(&w, NOON, true), [Step::FlagOff { retry: true }]);
        w.ended_ms = Some(NOON - FLAG_RETRY_FOR_MS);
        assert!(steps(&w, NOON, true).is_empty());
    }

    #[test]
    fn a_replan_after_a_failed_post_skips_the_posts_that_follow() {
        // The executor plans again from the stage after a failed post, chat off.
        let mut w = window(NOON - 3 * 24 * HOUR, NOON + 50 * MIN, NOON + 2 * HOUR);
        w.scheduled_announced = true;
        let s = plan(&w, NOON, &settings(), false, Stage::Leads);
        assert!(s.is_empty(), "{s:?}");
        assert_eq!(Stage::EndNotice.after(), None);
    }
}
