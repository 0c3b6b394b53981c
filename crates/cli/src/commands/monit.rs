//! `pmdaemon monit [--interval 2]`: a live terminal UI of the process table
//! (CPU sparkline per instance), the host, the selected instance and the
//! tail of its logs, with keys to restart, stop or reload it.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use anyhow::Result;
use pmdaemon_core::api::endpoints::{List, Logs, Reload, Restart, Stop, System};
use pmdaemon_core::api::{
    LogsQuery, ProcessInfo, ReloadRequest, RestartRequest, Status, SystemInfo,
};
use pmdaemon_core::home::Home;
use pmdaemon_core::units::{format_bytes, format_uptime};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState};
use ratatui::{DefaultTerminal, Frame};

use crate::cli::MonitArgs;
use crate::client::Client;

/// CPU samples kept per instance for its sparkline.
const HISTORY: usize = 16;
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Restart,
    Stop,
    Reload,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Restart => "Restart",
            Action::Stop => "Stop",
            Action::Reload => "Reload",
        }
    }
}

#[derive(Default)]
struct Screen {
    processes: Vec<ProcessInfo>,
    system: Option<SystemInfo>,
    history: HashMap<String, VecDeque<f32>>,
    logs: Vec<String>,
    table: TableState,
    confirm: Option<(Action, String)>,
    message: String,
}

/// Runs the UI until `q`.
pub async fn run(args: MonitArgs, home: Home) -> Result<()> {
    use std::io::IsTerminal;
    const NEEDS_TERMINAL: &str = "monit needs a terminal (stdin and stdout); for scripts, use `pmdaemon list --json` or `pmdaemon logs --follow`";
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        anyhow::bail!(NEEDS_TERMINAL);
    }
    let client = Client::connect(home).await?;
    let interval = Duration::from_secs_f64(args.interval.max(0.2));
    let mut terminal =
        ratatui::try_init().map_err(|err| anyhow::anyhow!("{NEEDS_TERMINAL} ({err})"))?;
    let result = event_loop(&mut terminal, &client, interval).await;
    ratatui::restore();
    result
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    client: &Client,
    interval: Duration,
) -> Result<()> {
    let mut screen = Screen::default();
    screen.table.select(Some(0));
    let mut refreshed: Option<Instant> = None;
    loop {
        if refreshed.is_none_or(|at| at.elapsed() >= interval) {
            refresh(client, &mut screen).await;
            refreshed = Some(Instant::now());
        }
        terminal.draw(|frame| draw(frame, &mut screen))?;
        if !event::poll(Duration::from_millis(100))? {
            continue;
        }
        let Event::Key(key) = event::read()? else {
            continue;
        };
        if key.kind != KeyEventKind::Press {
            continue;
        }
        if let Some((action, target)) = screen.confirm.take() {
            if matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                screen.message = perform(client, action, &target).await;
                refreshed = None;
            } else {
                screen.message = format!("{} of {target} cancelled", action.verb());
            }
            continue;
        }
        let selected = screen.table.selected().unwrap_or(0);
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
            // Another instance: its logs now; the sampled figures (and the
            // sparklines' history) keep to the interval.
            KeyCode::Down | KeyCode::Char('j') => {
                let last = screen.processes.len().saturating_sub(1);
                screen.table.select(Some((selected + 1).min(last)));
                refresh_logs(client, &mut screen).await;
            }
            KeyCode::Up | KeyCode::Char('k') => {
                screen.table.select(Some(selected.saturating_sub(1)));
                refresh_logs(client, &mut screen).await;
            }
            KeyCode::Char(c @ ('r' | 's' | 'l')) => {
                if let Some(process) = screen.processes.get(selected) {
                    let action = match c {
                        'r' => Action::Restart,
                        's' => Action::Stop,
                        _ => Action::Reload,
                    };
                    screen.confirm = Some((action, process.name.clone()));
                }
            }
            _ => {}
        }
    }
}

async fn refresh(client: &Client, screen: &mut Screen) {
    match client.call::<List>("", &()).await {
        Ok(processes) => {
            for process in &processes {
                let history = screen.history.entry(process.name.clone()).or_default();
                history.push_back(process.cpu_percent.unwrap_or(0.0));
                while history.len() > HISTORY {
                    history.pop_front();
                }
            }
            screen.processes = processes;
        }
        Err(err) => screen.message = format!("{err:#}"),
    }
    screen.system = client.call::<System>("", &()).await.ok();
    let selected = screen
        .table
        .selected()
        .unwrap_or(0)
        .min(screen.processes.len().saturating_sub(1));
    screen.table.select(Some(selected));
    refresh_logs(client, screen).await;
}

/// The log tail of the selected instance.
async fn refresh_logs(client: &Client, screen: &mut Screen) {
    let selected = screen.table.selected().unwrap_or(0);
    screen.logs.clear();
    if let Some(process) = screen.processes.get(selected) {
        let query = LogsQuery {
            lines: Some(20),
            ..LogsQuery::default()
        };
        if let Ok(logs) = client.call::<Logs>(&process.name, &query).await {
            for tail in logs.tails {
                let tag = tail.stream;
                screen
                    .logs
                    .extend(tail.lines.into_iter().map(|l| format!("{tag} │ {l}")));
            }
        }
    }
}

async fn perform(client: &Client, action: Action, target: &str) -> String {
    let result: Result<Vec<ProcessInfo>> = match action {
        Action::Stop => client.call::<Stop>(target, &()).await,
        Action::Restart => {
            client
                .call::<Restart>(target, &RestartRequest::default())
                .await
        }
        Action::Reload => {
            client
                .call::<Reload>(target, &ReloadRequest::default())
                .await
        }
    };
    match result {
        Ok(_) => format!("{} of {target} done", action.verb()),
        Err(err) => format!("{} of {target} failed: {err:#}", action.verb()),
    }
}

fn sparkline(history: Option<&VecDeque<f32>>) -> String {
    let Some(history) = history else {
        return String::new();
    };
    let peak = history.iter().copied().fold(100.0f32, f32::max);
    history
        .iter()
        .map(|value| {
            let level = ((value / peak) * (BARS.len() - 1) as f32).round() as usize;
            BARS[level.min(BARS.len() - 1)]
        })
        .collect()
}

/// Colours unless `NO_COLOR` (or a non-terminal without
/// `CLICOLOR_FORCE`) says otherwise; bold and reverse stay.
fn coloured(style: Style) -> Style {
    static COLOUR: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *COLOUR.get_or_init(|| crate::render::colour_for(&std::io::stdout())) {
        style
    } else {
        Style {
            fg: None,
            bg: None,
            ..style
        }
    }
}

fn status_style(status: Status) -> Style {
    match status {
        Status::Online => coloured(Style::default().fg(Color::Green)),
        Status::Errored => coloured(Style::default().fg(Color::Red)),
        Status::Stopped => coloured(Style::default().fg(Color::DarkGray)),
        _ => coloured(Style::default().fg(Color::Yellow)),
    }
}

fn draw(frame: &mut Frame, screen: &mut Screen) {
    let [header, table, details, logs, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length((screen.processes.len() as u16 + 3).clamp(4, 12)),
        Constraint::Length(4),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());

    let host = match &screen.system {
        Some(system) => format!(
            " host CPU {}×{} │ free {}/{} │ load {:.2} {:.2} {:.2} │ daemon {}",
            system
                .cpu_percent
                .map_or("-".to_string(), |c| format!("{c:.1}%")),
            system.cpus,
            format_bytes(system.memory_available),
            format_bytes(system.memory_total),
            system.load[0],
            system.load[1],
            system.load[2],
            format_bytes(system.daemon_memory),
        ),
        None => " host: waiting for the first sample".to_string(),
    };
    frame.render_widget(
        Paragraph::new(host).style(Style::default().add_modifier(Modifier::BOLD)),
        header,
    );

    let rows: Vec<Row> = screen
        .processes
        .iter()
        .map(|p| {
            Row::new(vec![
                p.id.to_string(),
                p.name.clone(),
                p.status.to_string(),
                p.cpu_percent.map_or("-".into(), |c| format!("{c:.1}")),
                p.memory_bytes.map_or("-".into(), format_bytes),
                p.restarts.to_string(),
                p.uptime_ms.map_or("-".into(), format_uptime),
                sparkline(screen.history.get(&p.name)),
            ])
            .style(status_style(p.status))
        })
        .collect();
    let widths = [
        Constraint::Length(4),
        Constraint::Min(10),
        Constraint::Length(15),
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(4),
        Constraint::Length(7),
        Constraint::Length(HISTORY as u16),
    ];
    let table_widget = Table::new(rows, widths)
        .header(
            Row::new([
                "ID",
                "Name",
                "Status",
                "CPU%",
                "Memory",
                "↺",
                "Uptime",
                "CPU history",
            ])
            .style(Style::default().add_modifier(Modifier::BOLD)),
        )
        .block(Block::default().borders(Borders::ALL).title(" processes "))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    frame.render_stateful_widget(table_widget, table, &mut screen.table);

    let selected = screen
        .table
        .selected()
        .and_then(|i| screen.processes.get(i));
    let detail = match selected {
        Some(p) => vec![
            Line::from(format!(
                " {} (app {}, instance {}) │ pid {} │ port {}",
                p.name,
                p.app,
                p.instance,
                p.pid.map_or("-".into(), |v| v.to_string()),
                p.port.map_or("-".into(), |v| v.to_string())
            )),
            Line::from(format!(
                " restarts {} ({} unstable) │ last exit {}",
                p.restarts,
                p.unstable_restarts,
                p.last_exit.map_or("-".into(), |e| e.to_string())
            )),
        ],
        None => vec![Line::from(" no processes: start one with `pmdaemon start`")],
    };
    frame.render_widget(
        Paragraph::new(detail).block(Block::default().borders(Borders::TOP).title(" details ")),
        details,
    );

    let height = logs.height.saturating_sub(1) as usize;
    let skip = screen.logs.len().saturating_sub(height);
    let lines: Vec<Line> = screen.logs[skip..]
        .iter()
        .map(|l| Line::from(l.as_str()))
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::TOP).title(" logs ")),
        logs,
    );

    let help = match &screen.confirm {
        Some((action, target)) => format!(" {} {target}? (y/n)", action.verb()),
        None if !screen.message.is_empty() => format!(
            " {} │ ↑↓ select  r restart  s stop  l reload  q quit",
            screen.message
        ),
        None => " ↑↓ select  r restart  s stop  l reload  q quit".to_string(),
    };
    frame.render_widget(
        Paragraph::new(help).style(coloured(Style::default().fg(Color::Cyan))),
        footer,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_scale_to_at_least_one_core() {
        let history: VecDeque<f32> = [0.0, 50.0, 100.0].into();
        assert_eq!(sparkline(Some(&history)), "▁▅█");
        let busy: VecDeque<f32> = [100.0, 200.0].into();
        assert_eq!(sparkline(Some(&busy)), "▅█");
        assert_eq!(sparkline(None), "");
    }
}
