//! Every interaction runs inside a span carrying its correlation id (the
//! interaction's id, which Discord also shows in its own tooling), so every log
//! line a command, a button or a modal writes, down into `core`, can be found
//! together: `--log-format json` puts the span's fields on each line.

use klaxon_commands::{Data, Error};
use poise::serenity_prelude as serenity;
use tracing::{info_span, Instrument, Span};

/// poise's framework, with each event dispatched inside its span.
pub struct Traced(pub poise::Framework<Data, Error>);

#[serenity::async_trait]
impl serenity::Framework for Traced {
    async fn init(&mut self, client: &serenity::Client) {
        serenity::Framework::init(&mut self.0, client).await;
    }

    async fn dispatch(&self, ctx: serenity::Context, event: serenity::FullEvent) {
        let span = span_of(&event);
        serenity::Framework::dispatch(&self.0, ctx, event)
            .instrument(span)
            .await;
    }
}

fn span_of(event: &serenity::FullEvent) -> Span {
    use serenity::Interaction as I;
    let serenity::FullEvent::InteractionCreate { interaction } = event else {
        return Span::none();
    };
    match interaction {
        I::Command(c) => info_span!(
            "command",
            correlation_id = %c.id,
            command = %c.data.name,
            user_id = %c.user.id,
            channel_id = %c.channel_id
        ),
        I::Component(c) => info_span!(
            "button",
            correlation_id = %c.id,
            custom_id = %c.data.custom_id,
            user_id = %c.user.id,
            channel_id = %c.channel_id
        ),
        I::Modal(m) => info_span!(
            "modal",
            correlation_id = %m.id,
            custom_id = %m.data.custom_id,
            user_id = %m.user.id
        ),
        I::Autocomplete(a) => info_span!(
            "autocomplete",
            correlation_id = %a.id,
            command = %a.data.name
        ),
        _ => Span::none(),
    }
}
