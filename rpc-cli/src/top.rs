//! `rpc top`: the `rpc stats` view, refreshed every second in the terminal
//! with jobs/s in and out, until `q` (or Esc, or ctrl-c) — like `htop` or
//! `rq info --interval`. `--iterations N` / `--once` stop by themselves, for
//! scripted runs.
//!
//! Rates come from two samples a refresh apart ([`Rates::between`]): in from
//! the growth of the stream's entries-added counter, out from what was added
//! minus how much the stream grew. The first screen has no rates yet.
//!
//! Keys are read on a thread of their own (crossterm's reads block) and sent
//! to the refresh loop, which waits for the next tick or a key, whichever
//! comes first. A refresh that fails (Redis restarting) keeps the last
//! figures on screen with the error below them, and the loop goes on.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Block, Paragraph, Row, Table};
use ratatui::{DefaultTerminal, Frame};
use rpc_runtime::inspect::human_time::duration;
use rpc_runtime::inspect::{Rates, ServiceStats};
use rpc_runtime::Inspector;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::failure::Failure;
use crate::stats::collect;

/// `rpc top [SERVICE...] [--interval DURATION] [--iterations N | --once]`.
#[derive(Args, Debug)]
pub struct TopArgs {
    /// Services to show; default: every service found at each refresh.
    pub services: Vec<String>,
    /// Time between refreshes (`1s`, `500ms`; a bare number is seconds).
    #[arg(long, default_value = "1s", value_parser = crate::duration_arg::parse)]
    pub interval: Duration,
    /// Stop after this many screens (for scripts and tests).
    #[arg(long)]
    pub iterations: Option<u64>,
    /// Show one screen and exit (`--iterations 1`).
    #[arg(long, conflicts_with = "iterations")]
    pub once: bool,
}

/// Refreshes no faster than this (each one reads every queue)...
const MIN_INTERVAL: Duration = Duration::from_millis(50);
/// ...and no slower than this (a screen a day is a script's job).
const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// What one screen shows.
struct View<'a> {
    source: &'a str,
    stats: Vec<ServiceStats>,
    /// Live workers per service, from their heartbeats.
    live: std::collections::BTreeMap<String, u64>,
    rates: HashMap<String, Rates>,
    error: Option<String>,
    screens: u64,
    interval: Duration,
}

pub async fn run(url: &str, prefix: &str, args: TopArgs) -> Result<(), Failure> {
    let usage = |reason: &str| Failure::cannot("start rpc top", reason);
    if !std::io::stdout().is_terminal() {
        return Err(usage(
            "it draws on a terminal; for scripts use `rpc stats --format json`",
        ));
    }
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&args.interval) {
        return Err(usage("--interval is between 50ms and 1 day"));
    }
    let limit = if args.once { Some(1) } else { args.iterations };
    // Connection and service errors are printed on the ordinary screen,
    // before the terminal switches over.
    let inspector = crate::broker::inspector(url, prefix).await?;
    let first = collect(&inspector, prefix, &args.services).await?;
    let live = crate::stats::live_workers(&inspector, &first).await?;
    let mut terminal = ratatui::try_init().map_err(terminal_error)?;
    let source = format!("{} prefix `{prefix}`", inspector.url());
    let mut view = View {
        source: &source,
        stats: first,
        live,
        rates: HashMap::new(),
        error: None,
        screens: 0,
        interval: args.interval,
    };
    let result =
        refresh_until_quit(&mut terminal, &inspector, prefix, &args, limit, &mut view).await;
    ratatui::restore();
    result
}

async fn refresh_until_quit(
    terminal: &mut DefaultTerminal,
    inspector: &Inspector,
    prefix: &str,
    args: &TopArgs,
    limit: Option<u64>,
    view: &mut View<'_>,
) -> Result<(), Failure> {
    let mut keys = read_keys();
    let mut sampled = Instant::now();
    loop {
        terminal
            .draw(|frame| draw(frame, view))
            .map_err(terminal_error)?;
        view.screens += 1;
        if limit.is_some_and(|n| view.screens >= n) {
            return Ok(());
        }
        let next = sampled + view.interval;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => break,
                key = keys.recv(), if !keys.is_closed() => {
                    if key.as_ref().is_some_and(quits) {
                        return Ok(());
                    }
                }
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
        match collect(inspector, prefix, &args.services).await {
            Ok(stats) => {
                view.live = crate::stats::live_workers(inspector, &stats)
                    .await
                    .unwrap_or_default();
                let now = Instant::now();
                view.rates = rates(&view.stats, &stats, now - sampled);
                view.stats = stats;
                view.error = None;
                sampled = now;
            }
            Err(e) => {
                view.error = Some(e.to_string());
                sampled = Instant::now();
            }
        }
    }
}

/// Key presses, from a thread blocked in crossterm's `read`. The channel
/// closes if the terminal cannot be read.
fn read_keys() -> mpsc::UnboundedReceiver<KeyEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || loop {
        match event::read() {
            Ok(Event::Key(key)) if key.kind == KeyEventKind::Press => {
                if tx.send(key).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    });
    rx
}

fn quits(key: &KeyEvent) -> bool {
    match key.code {
        KeyCode::Char('q' | 'Q') | KeyCode::Esc => true,
        KeyCode::Char('c') => key.modifiers.contains(KeyModifiers::CONTROL),
        _ => false,
    }
}

/// Rates per service between two refreshes (services new since have none).
fn rates(
    earlier: &[ServiceStats],
    later: &[ServiceStats],
    elapsed: Duration,
) -> HashMap<String, Rates> {
    later
        .iter()
        .filter_map(|now| {
            let before = earlier.iter().find(|s| s.service == now.service)?;
            Some((now.service.clone(), Rates::between(before, now, elapsed)))
        })
        .collect()
}

fn draw(frame: &mut Frame, view: &View) {
    let workers: usize = view.stats.iter().map(|s| s.consumers.len()).sum();
    let [title, services, consumers, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(view.stats.len() as u16 + 3),
        Constraint::Min(workers.min(1) as u16 + 3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let bold = Style::new().add_modifier(Modifier::BOLD);
    frame.render_widget(
        Paragraph::new(format!("rpc top — {}", view.source)).style(bold),
        title,
    );
    let rate = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{r:.1}"));
    let rows = view.stats.iter().map(|s| {
        let r = view.rates.get(&s.service);
        // A sharded service is one row, summed over its shards.
        let name = if s.shards > 1 {
            format!("{} ({} shards)", s.service, s.shards)
        } else {
            s.service.clone()
        };
        Row::new([
            name,
            s.queued.to_string(),
            s.leased.to_string(),
            s.dead_letters.to_string(),
            rate(r.and_then(|r| r.in_per_sec)),
            rate(r.and_then(|r| r.out_per_sec)),
            view.live.get(&s.service).copied().unwrap_or(0).to_string(),
            s.oldest_leased_age.map_or("-".to_owned(), duration),
        ])
    });
    let header = [
        "SERVICE",
        "QUEUED",
        "LEASED",
        "DEAD",
        "IN/S",
        "OUT/S",
        "WORKERS",
        "OLDEST LEASE",
    ];
    let widths = [
        Constraint::Min(12),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(12),
    ];
    frame.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(bold))
            .block(Block::bordered().title(" queues ")),
        services,
    );
    let rows = view.stats.iter().flat_map(|s| {
        s.consumers.iter().map(|c| {
            Row::new([
                s.service.clone(),
                c.name.clone(),
                c.pending.to_string(),
                duration(c.idle),
                c.inactive.map_or("-".to_owned(), duration),
            ])
        })
    });
    let widths = [
        Constraint::Min(12),
        Constraint::Min(20),
        Constraint::Length(8),
        Constraint::Length(10),
        Constraint::Length(10),
    ];
    frame.render_widget(
        Table::new(rows, widths)
            .header(Row::new(["SERVICE", "WORKER", "LEASED", "IDLE", "LAST READ"]).style(bold))
            .block(Block::bordered().title(" workers ")),
        consumers,
    );
    let line = match &view.error {
        Some(e) => format!("refresh failed, showing the last figures: {e}"),
        None => format!(
            "screen {}, every {} — q quits",
            view.screens + 1,
            duration(view.interval)
        ),
    };
    frame.render_widget(Paragraph::new(line), status);
}

fn terminal_error(e: std::io::Error) -> Failure {
    Failure::cannot("draw on the terminal", e)
}
