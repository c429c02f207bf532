//! `fake-discord`: runs the fake with default settings for manual experiments.
//!
//! ```text
//! fake-discord [--port N] [--token T] [--channel-window-ms MS]
//! ```

use std::time::Duration;

use anyhow::{bail, Context as _};
use klaxon_fake_discord::{FakeConfig, FakeDiscord};

fn usage() -> &'static str {
    "usage: fake-discord [--port N] [--token TOKEN] [--channel-window-ms MS]"
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "klaxon_fake_discord=debug,info".into()),
        )
        .init();

    let mut cfg = FakeConfig::default();
    let mut port = 0u16;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("{flag} needs a value\n{}", usage()))
        };
        match flag.as_str() {
            "--port" => port = value()?.parse().context("--port")?,
            "--token" => cfg.token = value()?,
            "--channel-window-ms" => {
                cfg.channel_window =
                    Duration::from_millis(value()?.parse().context("--channel-window-ms")?)
            }
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(());
            }
            other => bail!("unknown argument {other}\n{}", usage()),
        }
    }

    let fake = FakeDiscord::start_on_port(cfg, port).await?;
    println!("{}", fake.api_url());
    eprintln!(
        "fake Discord listening: REST {}/api/v10, gateway {}; Ctrl-C to stop",
        fake.api_url(),
        fake.gateway_url()
    );

    // Print what the bot says as it says it.
    let watcher = fake.clone();
    tokio::spawn(async move {
        loop {
            if let Some(output) = watcher.next_output(Duration::from_secs(3600)).await {
                println!("{:?}: {}", output.kind, output.message.text());
            }
        }
    });

    tokio::signal::ctrl_c().await?;
    let violations = fake.violations();
    eprintln!("violations: {}", violations.total());
    for line in &violations.details {
        eprintln!("  {line}");
    }
    Ok(())
}
