//! `rollcall notify run | status | list | requeue | settings | bench`: the notification outbox
//! (see ARCHITECTURE.md, "Notifications").

use crate::cmd_ledger::StoreOpts;
use anyhow::{anyhow, Context};
use rollcall_ledger::{NotifySettings, OutboxState, Store};
use rollcall_notify::{ChannelConfig, Dispatcher, DispatcherConfig};
use serde_json::json;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct ChannelOpts {
    /// `https://host[:port]/path` of the SMS/WeChat webhook gateway (`http://` for one on this
    /// machine, or with ROLLCALL_WEBHOOK_ALLOW_HTTP=1; secret: ROLLCALL_WEBHOOK_SECRET; extra
    /// trusted CAs: ROLLCALL_WEBHOOK_CA_FILE).
    #[arg(long, env = "ROLLCALL_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// SMTP relay host for e-mail: STARTTLS (or TLS on port 465) unless it is on this machine;
    /// ROLLCALL_SMTP_TLS, ROLLCALL_SMTP_USERNAME/PASSWORD, ROLLCALL_SMTP_CA_FILE.
    #[arg(long, env = "ROLLCALL_SMTP_HOST")]
    pub smtp_host: Option<String>,
    #[arg(long, env = "ROLLCALL_SMTP_PORT")]
    pub smtp_port: Option<u16>,
    /// Sender, e.g. `Rollcall <noreply@school.example>`.
    #[arg(long, env = "ROLLCALL_SMTP_FROM")]
    pub smtp_from: Option<String>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum NotifyCmd {
    /// Run the dispatcher until SIGTERM / Ctrl-C (or one tick with --once).
    Run {
        #[command(flatten)]
        channels: ChannelOpts,
        /// Dispatcher settings as JSON (batch, lease_ms, max_attempts, backoff_base_ms, …).
        #[arg(long)]
        config: Option<String>,
        /// One tick: claim, send, record; print what it did.
        #[arg(long)]
        once: bool,
        #[command(flatten)]
        store: StoreOpts,
    },
    /// A recording webhook receiver (for tests and benchmarks, and as a reference for a
    /// gateway): verifies each delivery's signature with `ROLLCALL_WEBHOOK_SECRET`, answers 200
    /// and appends `{"key","at"}` per delivery to the journal; runs until SIGTERM / Ctrl-C.
    Receiver {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// JSON lines, one per accepted delivery.
        #[arg(long)]
        journal: PathBuf,
        /// Where the listening address is written once it listens.
        #[arg(long)]
        addr_file: Option<PathBuf>,
        /// Seconds a signature's timestamp may be off.
        #[arg(long, default_value_t = 3600)]
        tolerance_s: i64,
    },
    /// Outbox counts per state and the school's notification settings.
    Status {
        #[command(flatten)]
        store: StoreOpts,
    },
    /// Outbox rows, newest first (`--state dead`: the dead letters, with their last error).
    List {
        /// pending, sent or dead.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[command(flatten)]
        store: StoreOpts,
    },
    /// Put a dead-lettered row back in the queue.
    Requeue {
        id: i64,
        #[command(flatten)]
        store: StoreOpts,
    },
    /// Print the school's notification settings, or replace them with a JSON file.
    Settings {
        #[arg(long, value_name = "FILE.json")]
        set: Option<PathBuf>,
        #[command(flatten)]
        store: StoreOpts,
    },
    /// Dispatch throughput and cause-to-delivery delay against a local receiver (scratch SQLite).
    Bench {
        #[arg(long, default_value_t = 2000)]
        backlog: usize,
        #[arg(long, default_value_t = 500)]
        paced: usize,
        /// Notices per second in the paced phase.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        #[arg(long, default_value_t = 32)]
        batch: i64,
        #[arg(long, default_value_t = 20)]
        poll_ms: u64,
    },
}

async fn open(opts: &StoreOpts) -> anyhow::Result<Store> {
    let store = Store::from_env(opts.data.as_deref())
        .await
        .context("opening the ledger store")?;
    Ok(match &opts.school {
        Some(id) => store.school(id).await?,
        None => store.only_school().await?,
    })
}

fn print<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub async fn run(cmd: NotifyCmd) -> anyhow::Result<()> {
    match cmd {
        NotifyCmd::Run {
            channels,
            config,
            once,
            store,
        } => {
            let s = open(&store).await?;
            let ch = ChannelConfig {
                webhook_url: channels.webhook_url,
                smtp_host: channels.smtp_host,
                smtp_port: channels.smtp_port,
                smtp_from: channels.smtp_from,
                ..Default::default()
            }
            .with_env()?
            .build(s.clock())?;
            let cfg: DispatcherConfig = match config {
                Some(js) => serde_json::from_str(&js).context("--config")?,
                None => DispatcherConfig::default(),
            };
            if once {
                let d = Dispatcher::new(s.clone(), ch, cfg)?;
                let r = d.run_once(s.now()).await?;
                return print(&json!({"tick": r, "counts": s.outbox_counts(s.now()).await?}));
            }
            let h = rollcall_notify::spawn_dispatcher(s.clone(), ch, cfg)?;
            eprintln!("rollcall notify: dispatching for school {}", s.school_id());
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            h.shutdown().await;
            print(&s.outbox_counts(s.now()).await?)
        }
        NotifyCmd::Receiver {
            listen,
            journal,
            addr_file,
            tolerance_s,
        } => {
            let secret = std::env::var("ROLLCALL_WEBHOOK_SECRET")
                .context("ROLLCALL_WEBHOOK_SECRET must hold the webhook secret")?;
            let r = crate::receiver::Receiver::start_journaled(
                secret.as_bytes(),
                tolerance_s,
                &listen,
                Some(journal),
            )
            .await
            .context("starting the webhook receiver")?;
            if let Some(f) = addr_file {
                // written whole, then renamed: a reader never sees half an address
                let tmp = f.with_extension("tmp");
                std::fs::write(&tmp, r.addr.to_string())?;
                std::fs::rename(&tmp, &f)?;
            }
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            drop(r);
            Ok(())
        }
        NotifyCmd::Status { store } => {
            let s = open(&store).await?;
            print(&json!({
                "school": s.school_id(),
                "counts": s.outbox_counts(s.now()).await?,
                "settings": s.notify_settings().await?,
            }))
        }
        NotifyCmd::List {
            state,
            limit,
            store,
        } => {
            let s = open(&store).await?;
            let state = state
                .as_deref()
                .map(|v| {
                    OutboxState::parse(v)
                        .ok_or_else(|| anyhow!("--state: {v:?} is not pending, sent or dead"))
                })
                .transpose()?;
            print(&s.outbox(state, limit).await?)
        }
        NotifyCmd::Requeue { id, store } => {
            let s = open(&store).await?;
            s.requeue_notice(id, "cli", s.now()).await?;
            print(&json!({"requeued": id}))
        }
        NotifyCmd::Settings { set, store } => {
            let s = open(&store).await?;
            if let Some(f) = set {
                let text = std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?;
                let v: NotifySettings = serde_json::from_str(&text)
                    .with_context(|| format!("{}: not notification settings", f.display()))?;
                s.set_notify_settings(&v, "cli").await?;
            }
            print(&s.notify_settings().await?)
        }
        NotifyCmd::Bench {
            backlog,
            paced,
            rate,
            batch,
            poll_ms,
        } => {
            let dir = std::env::temp_dir().join(format!(
                "rollcall-notify-bench-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ));
            let store = Store::open_data_dir(&dir).await?;
            let s = store
                .create_school("bench", "Bench", 0, &Default::default())
                .await?;
            let r = crate::bench::notify::bench_dispatch(&s, backlog, paced, rate, batch, poll_ms)
                .await;
            store.close().await;
            let _ = std::fs::remove_dir_all(&dir);
            print(&r?)
        }
    }
}
