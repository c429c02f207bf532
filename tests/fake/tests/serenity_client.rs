//! The real client library the bot uses, serenity 0.12.5, run against the fake: every
//! payload the fake sends must deserialize (serenity silently drops events it cannot
//! parse, which would show up here as a missing answer) and every request serenity
//! sends must be accepted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use klaxon_fake_discord::{FakeConfig, FakeDiscord, Member, OutputKind, SlashInvocation};
use serde_json::json;
use serenity::all::{
    ChannelId, ClientBuilder, CommandOptionType, Context, CreateActionRow, CreateAllowedMentions,
    CreateAttachment, CreateAutocompleteResponse, CreateButton, CreateCommand, CreateCommandOption,
    CreateEmbed, CreateInteractionResponse, CreateInteractionResponseFollowup,
    CreateInteractionResponseMessage, CreateMessage, CreateThread, EditInteractionResponse,
    EventHandler, GatewayIntents, GuildId, HttpBuilder, Interaction, Message, Ready, UserId,
};

const GUILD: u64 = 123;
const CHANNEL: u64 = 111;
const WAIT: Duration = Duration::from_secs(5);

/// Errors the handler ran into (a test fails if there are any).
type Errors = Arc<Mutex<Vec<String>>>;

struct Handler {
    errors: Errors,
}

impl Handler {
    fn check<T, E: std::fmt::Debug>(&self, what: &str, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.errors.lock().unwrap().push(format!("{what}: {e:?}"));
                None
            }
        }
    }
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, _ready: Ready) {
        let commands = vec![
            CreateCommand::new("ping").description("Ping").add_option(
                CreateCommandOption::new(CommandOptionType::String, "arg", "Argument")
                    .set_autocomplete(true),
            ),
            CreateCommand::new("slow").description("Takes a while"),
            CreateCommand::new("who")
                .description("Who is it")
                .add_option(
                    CreateCommandOption::new(CommandOptionType::User, "user", "A user")
                        .required(true),
                ),
        ];
        self.check(
            "set_commands",
            GuildId::new(GUILD).set_commands(&ctx.http, commands).await,
        );
    }

    async fn message(&self, ctx: Context, msg: Message) {
        if msg.content == "!hello" {
            if let Some(reply) = self.check("reply", msg.reply(&ctx.http, "hello yourself").await) {
                self.check("react", reply.react(&ctx.http, '✅').await);
            }
            let thread = CreateThread::new("discussion")
                .auto_archive_duration(serenity::all::AutoArchiveDuration::OneDay);
            self.check(
                "thread",
                msg.channel_id
                    .create_thread_from_message(&ctx.http, msg.id, thread)
                    .await,
            );
        }
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        let http = &ctx.http;
        match interaction {
            Interaction::Command(cmd) => match cmd.data.name.as_str() {
                "ping" => {
                    let button = CreateButton::new("ack").label("Acknowledge");
                    let message = CreateInteractionResponseMessage::new()
                        .content("pong")
                        .components(vec![CreateActionRow::Buttons(vec![button])]);
                    self.check(
                        "ping",
                        cmd.create_response(http, CreateInteractionResponse::Message(message))
                            .await,
                    );
                }
                "slow" => {
                    self.check("defer", cmd.defer_ephemeral(http).await);
                    let followup = CreateInteractionResponseFollowup::new()
                        .content("done")
                        .add_file(CreateAttachment::bytes(b"log line".to_vec(), "log.txt"));
                    self.check("followup", cmd.create_followup(http, followup).await);
                    let edit = EditInteractionResponse::new().content("done!");
                    self.check("edit", cmd.edit_response(http, edit).await);
                }
                "who" => {
                    let user = cmd
                        .data
                        .resolved
                        .users
                        .values()
                        .next()
                        .map(|u| u.name.clone());
                    let content = format!("that is {}", user.unwrap_or_else(|| "nobody".into()));
                    let message = CreateInteractionResponseMessage::new().content(content);
                    self.check(
                        "who",
                        cmd.create_response(http, CreateInteractionResponse::Message(message))
                            .await,
                    );
                    let post = CreateMessage::new()
                        .content(format!("<@{}> asked", cmd.user.id))
                        .embed(
                            CreateEmbed::new()
                                .title("Alert")
                                .description("disk full")
                                .field("host", "db1", true),
                        )
                        .allowed_mentions(CreateAllowedMentions::new());
                    self.check(
                        "send",
                        ChannelId::new(CHANNEL).send_message(http, post).await,
                    );
                }
                other => self
                    .errors
                    .lock()
                    .unwrap()
                    .push(format!("unexpected command {other}")),
            },
            Interaction::Autocomplete(ac) => {
                let response = CreateAutocompleteResponse::new().add_string_choice("alpha", "a");
                self.check(
                    "autocomplete",
                    ac.create_response(http, CreateInteractionResponse::Autocomplete(response))
                        .await,
                );
            }
            Interaction::Component(component) => {
                let message = CreateInteractionResponseMessage::new()
                    .content("acked")
                    .components(vec![]);
                let response = CreateInteractionResponse::UpdateMessage(message);
                self.check("component", component.create_response(http, response).await);
            }
            other => self
                .errors
                .lock()
                .unwrap()
                .push(format!("unexpected interaction {other:?}")),
        }
    }
}

fn alice() -> Member {
    Member {
        user_id: 42,
        username: "alice".into(),
        roles: vec![900],
    }
}

async fn next(fake: &FakeDiscord) -> klaxon_fake_discord::Output {
    fake.next_output(WAIT).await.expect("the bot answers")
}

#[tokio::test]
async fn serenity_bot_round_trip() {
    // RUST_LOG=serenity=debug shows the client's side of the conversation.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let fake = FakeDiscord::start(FakeConfig::default()).await.unwrap();
    let errors: Errors = Arc::default();
    let http = HttpBuilder::new("fake-token")
        .proxy(fake.api_url())
        .ratelimiter_disabled(true)
        .build();
    let intents = GatewayIntents::non_privileged() | GatewayIntents::MESSAGE_CONTENT;
    let mut client = ClientBuilder::new_with_http(http, intents)
        .event_handler(Handler {
            errors: errors.clone(),
        })
        .await
        .unwrap();
    let shard_manager = client.shard_manager.clone();
    tokio::spawn(async move { client.start().await });

    fake.wait_ready(WAIT).await.unwrap();
    let commands = fake.wait_commands(GUILD, WAIT).await.unwrap();
    assert_eq!(commands.len(), 3);

    // A reply with a button, then a click that updates the message.
    fake.slash(SlashInvocation::guild("ping", CHANNEL, alice()))
        .await
        .unwrap();
    let out = next(&fake).await;
    assert!(matches!(
        out.kind,
        OutputKind::Callback {
            callback_type: 4,
            ..
        }
    ));
    assert_eq!(out.message.text(), "pong");
    assert_eq!(out.message.custom_ids(), ["ack"]);
    fake.click(alice(), &out.message, "ack").await.unwrap();
    let out = next(&fake).await;
    assert!(matches!(
        out.kind,
        OutputKind::Callback {
            callback_type: 7,
            ..
        }
    ));
    assert_eq!(out.message.text(), "acked");

    // Defer, followup with a file, edit.
    fake.slash(SlashInvocation::guild("slow", CHANNEL, alice()))
        .await
        .unwrap();
    assert!(matches!(
        next(&fake).await.kind,
        OutputKind::Callback {
            callback_type: 5,
            ..
        }
    ));
    let followup = next(&fake).await;
    assert!(matches!(followup.kind, OutputKind::Followup { .. }));
    assert!(followup.message.ephemeral());
    assert_eq!(followup.message.attachments[0].filename, "log.txt");
    let edit = next(&fake).await;
    assert!(matches!(edit.kind, OutputKind::EditOriginal { .. }));
    assert_eq!(edit.message.text(), "done!");

    // Autocomplete.
    let inv = SlashInvocation::guild("ping", CHANNEL, alice()).with_options(vec![
        json!({ "name": "arg", "type": 3, "value": "al", "focused": true }),
    ]);
    fake.autocomplete(inv).await.unwrap();
    let out = next(&fake).await;
    assert_eq!(out.message.raw["choices"][0]["name"], "alpha");

    // A user option is resolved; a channel message with an embed follows.
    let inv = SlashInvocation::guild("who", CHANNEL, alice())
        .with_options(vec![json!({ "name": "user", "type": 6, "value": "42" })]);
    fake.slash(inv).await.unwrap();
    assert_eq!(next(&fake).await.message.text(), "that is alice");
    let post = next(&fake).await;
    assert!(matches!(
        post.kind,
        OutputKind::ChannelMessage {
            channel_id: CHANNEL
        }
    ));
    assert_eq!(
        post.message.text(),
        "<@42> asked\nAlert\ndisk full\nhost\ndb1"
    );

    // A user message: reply, reaction, thread.
    let user_message = json!({
        "id": "5000", "channel_id": CHANNEL.to_string(), "guild_id": GUILD.to_string(),
        "author": { "id": "42", "username": "alice", "discriminator": "0", "global_name": null, "avatar": null },
        "content": "!hello", "timestamp": "2024-01-01T00:00:00.000000+00:00", "edited_timestamp": null,
        "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [], "attachments": [],
        "embeds": [], "pinned": false, "type": 0, "flags": 0, "components": [],
    });
    fake.dispatch("MESSAGE_CREATE", user_message).await.unwrap();
    let reply = next(&fake).await;
    assert_eq!(reply.message.text(), "hello yourself");
    assert_eq!(reply.message.raw["message_reference"]["message_id"], "5000");

    // The gateway drops; serenity resumes and keeps working.
    fake.drop_gateway().await;
    fake.wait_ready(Duration::from_secs(15)).await.unwrap();
    fake.slash(SlashInvocation::guild("ping", CHANNEL, alice()))
        .await
        .unwrap();
    assert_eq!(next(&fake).await.message.text(), "pong");
    // It resumed (RESUMED, no second READY): commands were registered only once.
    let registrations = fake
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with("/commands"))
        .count();
    assert_eq!(registrations, 1);

    // Plain REST calls deserialize into serenity's models.
    let http = HttpBuilder::new("fake-token")
        .proxy(fake.api_url())
        .ratelimiter_disabled(true)
        .build();
    http.get_current_user().await.unwrap();
    http.get_current_application_info().await.unwrap();
    http.get_bot_gateway().await.unwrap();
    http.get_channel(ChannelId::new(CHANNEL)).await.unwrap();
    http.get_channel(ChannelId::new(5000)).await.unwrap(); // the thread
    http.get_guild(GuildId::new(GUILD)).await.unwrap();
    http.get_guild_roles(GuildId::new(GUILD)).await.unwrap();
    http.get_member(GuildId::new(GUILD), UserId::new(42))
        .await
        .unwrap();
    let dm = http
        .create_private_channel(&json!({ "recipient_id": "42" }))
        .await
        .unwrap();
    assert_eq!(dm.recipient.name, "alice");
    http.get_channel(dm.id).await.unwrap();
    let messages = http
        .get_messages(ChannelId::new(CHANNEL), None, Some(50))
        .await
        .unwrap();
    assert!(messages
        .iter()
        .any(|m| m.content == "hello yourself" && !m.reactions.is_empty()));
    // An error answer parses as Discord's error.
    let err = http.get_channel(ChannelId::new(999)).await.unwrap_err();
    assert!(format!("{err:?}").contains("10003"), "{err:?}");

    shard_manager.shutdown_all().await;
    let errors = errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "{errors:?}");
    let violations = fake.violations();
    assert_eq!(violations.total(), 0, "{violations:?}");
}
