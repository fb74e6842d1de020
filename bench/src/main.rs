//! `wsmschat-bench`: a load generator for the wsmschat server, over loopback only.
//!
//! - `conversations`: N visitor/agent pairs, each visitor sending R msg/s of P-byte text;
//!   end-to-end latency (visitor send -> agent receives), delivery, loss, duplicates, errors.
//! - `ramp`: `conversations` at rising offered load; the highest step with p99 <= 50 ms and
//!   nothing lost.
//! - `idle`: N visitor streams held open; server RSS per stream.
//! - `upload`: N concurrent uploads of M MiB over HTTP `POST /uploads`, bodies streamed;
//!   throughput, upload time, server CPU and the server's peak RSS above idle.
//! - `burst`: a marketing-campaign burst, V visitors opening conversations on one topic within
//!   T seconds, served by A agents; arrival and drain cost, events, and whether every visitor's
//!   queue position is right (see burst.rs).
//!
//! The load runs in child processes (`--workers`), each on a one-thread runtime by default
//! (`burst` runs in this process, on a multi-thread runtime).
//! Server CPU and memory come from /proc given its pid (`--server-pid`, or `--server-bin` to
//! start a fresh server). Human table by default, one JSON object with `--json`.

mod burst;
mod conv;
mod hist;
mod history;
mod idle;
mod net;
mod procfs;
mod server;
mod upload;
mod webhook;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::conv::{ConvJob, ConvParams, ConvResult, Transport};
use crate::hist::Hist;
use crate::idle::{IdleJob, IdleParams, IdleState};
use crate::server::Server;

#[derive(Parser)]
#[command(
    name = "wsmschat-bench",
    version,
    about = "Load generator for the wsmschat server (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Visitor/agent pairs exchanging messages at a fixed offered rate.
    Conversations(ConvArgs),
    /// Conversations at rising offered load; the highest step that passes.
    Ramp(RampArgs),
    /// Hold N idle visitor streams; server memory per stream.
    Idle(IdleArgs),
    /// Concurrent file uploads over HTTP POST /uploads; throughput and server memory.
    Upload(UploadArgs),
    /// A campaign burst on one topic's queue: arrival and drain cost, queue-position correctness.
    Burst(BurstArgs),
    /// A big history (seeded before the server starts): inbox search, history paging and
    /// resume latency, each answer checked.
    History(HistoryArgs),
    /// Internal: one load process (spawned by the others).
    #[command(hide = true)]
    Worker,
}

#[derive(Args, Clone)]
struct ServerArgs {
    /// The server to load (loopback only), e.g. http://127.0.0.1:8080.
    #[arg(long, env = "WSMSCHAT_BENCH_URL")]
    url: Option<String>,
    /// Its pid: CPU and memory are read from /proc/PID.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A chat-scope API key for the agents (`wsmschat api-key create --scope chat`).
    #[arg(long, env = "WSMSCHAT_BENCH_API_KEY")]
    api_key: Option<String>,
    /// Instead of --url: start a fresh server from this `wsmschat` binary (temp data dir,
    /// benchmark limits, API key created), once per run or ramp step.
    #[arg(long, conflicts_with = "url")]
    server_bin: Option<PathBuf>,
    /// Extra environment for the started server (repeat): KEY=VALUE.
    #[arg(long = "server-env", value_parser = parse_kv)]
    server_env: Vec<(String, String)>,
    /// Run the started server under `taskset -c CPUS`.
    #[arg(long)]
    server_cpus: Option<String>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Free text copied into the result.
    #[arg(long, default_value = "")]
    label: String,
    /// Exit with an error if anything was lost, duplicated or failed (never on timing).
    #[arg(long)]
    check: bool,
    /// With --server-bin: give the started server a webhook endpoint for every message, at
    /// a receiver in this process that never answers (`dead`) or answers at once (`live`).
    #[arg(long, default_value = "none", value_parser = ["none", "dead", "live"])]
    webhook: String,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

#[derive(Args, Clone)]
struct LoadArgs {
    /// Visitor transport.
    #[arg(long, value_enum, default_value = "native")]
    transport: Transport,
    /// Text bytes per message.
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Agents answer every message (agent -> visitor latency is reported too).
    #[arg(long)]
    reply: bool,
    /// Load processes.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Runtime threads per load process (1 = single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// HTTP/2 connections shared by the agents' streams per load process; 0 = one per agent.
    #[arg(long, default_value_t = 0)]
    agent_conns: usize,
    /// Spread sockets over this many loopback source addresses (127.0.0.2 ...); 0 = none.
    #[arg(long, default_value_t = 0)]
    source_ips: usize,
    /// How long to wait for outstanding deliveries after the last send.
    #[arg(long, default_value_t = 10_000)]
    drain_ms: u64,
    /// Pairs set up at once.
    #[arg(long, default_value_t = 64)]
    setup_concurrency: usize,
    /// Pass: p99 latency (from the scheduled send time) at most this.
    #[arg(long, default_value_t = 50.0)]
    p99_ms: f64,
    /// Extra staff streams following the whole inbox, as agent consoles do (the support
    /// floor: `--conversations 2000 --rate 0.5 --reply --inbox-streams 50`). Each must see
    /// every visitor message and every reply, or the run fails.
    #[arg(long, default_value_t = 0)]
    inbox_streams: usize,
}

#[derive(Args, Clone)]
struct ConvArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    load: LoadArgs,
    /// Visitor/agent pairs (one conversation each).
    #[arg(long, default_value_t = 200)]
    conversations: usize,
    /// Messages per second per visitor.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Messages per visitor (default: rate x --duration-secs).
    #[arg(long)]
    messages: Option<usize>,
    /// Sending time when --messages is not given.
    #[arg(long, default_value_t = 5.0)]
    duration_secs: f64,
}

#[derive(Args, Clone)]
struct RampArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    load: LoadArgs,
    /// Steps as conversations:rate-per-visitor, comma or space separated.
    #[arg(
        long,
        default_value = "200:10,500:10,1000:10,1000:15,1000:20,1000:30,1000:40"
    )]
    steps: String,
    /// Sending time per step.
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// Stop after this many failing steps in a row (0 = run every step).
    #[arg(long, default_value_t = 2)]
    stop_after_fails: usize,
    /// Pause between steps (with an external server).
    #[arg(long, default_value_t = 2.0)]
    pause_secs: f64,
}

#[derive(Args, Clone)]
struct IdleArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Streams to hold.
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// Stream transport.
    #[arg(long, value_enum, default_value = "web")]
    transport: Transport,
    /// Native only: streams per HTTP/2 connection.
    #[arg(long, default_value_t = 1)]
    streams_per_conn: usize,
    /// Load processes (each holds streams / workers sockets; a process may open 20,000 files here).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Spread sockets over this many loopback source addresses (127.0.0.2 ...).
    #[arg(long, default_value_t = 4)]
    source_ips: usize,
    /// How long to hold the streams (more than the server's heartbeat interval shows heartbeats).
    #[arg(long, default_value_t = 20.0)]
    hold_secs: f64,
    /// Sessions/streams opened at once per process.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
}

fn main() -> anyhow::Result<()> {
    procfs::raise_nofile();
    let cli = Cli::parse();
    if let Cmd::Worker = cli.command {
        return worker_main();
    }
    let rt = match &cli.command {
        // Thousands of streams read in this one process: every core.
        Cmd::Burst(a) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(a.threads.max(1))
            .enable_all()
            .build()?,
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
    };
    rt.block_on(async move {
        match cli.command {
            Cmd::Conversations(a) => cmd_conversations(a).await,
            Cmd::Ramp(a) => cmd_ramp(a).await,
            Cmd::Idle(a) => cmd_idle(a).await,
            Cmd::Upload(a) => cmd_upload(a).await,
            Cmd::Burst(a) => cmd_burst(a).await,
            Cmd::History(a) => cmd_history(a).await,
            Cmd::Worker => unreachable!(),
        }
    })?;
    if let Some(r) = webhook::report() {
        log(r);
    }
    Ok(())
}

fn log(msg: impl AsRef<str>) {
    eprintln!("[bench] {}", msg.as_ref());
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn r1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------- server under test

fn open_server(a: &ServerArgs) -> anyhow::Result<Server> {
    if let Some(bin) = &a.server_bin {
        let mut env = a.server_env.clone();
        if a.webhook != "none" {
            env.push(("WSMSCHAT_WEBHOOKS_ALLOW_PRIVATE".into(), "true".into()));
        }
        let s = Server::spawn(bin, &env, a.server_cpus.as_deref())?;
        log(format!("started {} (pid {})", s.url, s.pid.unwrap_or(0)));
        if a.webhook != "none" {
            webhook::configure(bin, s.data_dir().expect("started"), &s.url, &a.webhook)?;
            log(format!("webhook endpoint ({}) configured", a.webhook));
        }
        Ok(s)
    } else {
        let url = a
            .url
            .clone()
            .ok_or_else(|| anyhow!("give --url (and --api-key) or --server-bin"))?;
        net::loopback_addr(&url)?;
        Ok(Server::external(url, a.server_pid, a.api_key.clone()))
    }
}

// ---------------------------------------------------------------- child processes

struct Worker {
    _child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    index: usize,
}

impl Worker {
    async fn spawn(index: usize, job: &Value) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut child = tokio::process::Command::new(exe)
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut w = Self {
            _child: child,
            stdin,
            lines,
            index,
        };
        w.send(job).await?;
        Ok(w)
    }

    async fn send(&mut self, v: &Value) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(v)?;
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// The next message of type `ty` (an `error` message fails).
    async fn recv(&mut self, ty: &str, timeout: Duration) -> anyhow::Result<Value> {
        let line = tokio::time::timeout(timeout, self.lines.next_line())
            .await
            .map_err(|_| anyhow!("load process {}: no '{ty}' within {timeout:?}", self.index))??
            .ok_or_else(|| anyhow!("load process {} exited before '{ty}'", self.index))?;
        let v: Value = serde_json::from_str(&line)
            .with_context(|| format!("load process {} said {line:?}", self.index))?;
        match v["type"].as_str() {
            Some(t) if t == ty => Ok(v),
            Some("error") => bail!("load process {}: {}", self.index, v["message"]),
            _ => bail!("load process {}: expected '{ty}', got {line}", self.index),
        }
    }
}

async fn recv_all(ws: &mut [Worker], ty: &str, timeout: Duration) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::with_capacity(ws.len());
    for w in ws.iter_mut() {
        out.push(w.recv(ty, timeout).await?);
    }
    Ok(out)
}

async fn send_all(ws: &mut [Worker], v: &Value) -> anyhow::Result<()> {
    for w in ws.iter_mut() {
        w.send(v).await?;
    }
    Ok(())
}

/// Splits `n` units over `w` processes: (first, count) each.
fn split(n: usize, w: usize) -> Vec<(usize, usize)> {
    let w = w.clamp(1, n.max(1));
    let mut out = Vec::new();
    let mut first = 0;
    for i in 0..w {
        let count = n / w + usize::from(i < n % w);
        out.push((first, count));
        first += count;
    }
    out
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string(v).expect("serialisable"));
}

#[derive(Args, Clone)]
struct UploadArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Uploads, all started at once.
    #[arg(long, default_value_t = 20)]
    uploads: usize,
    /// Size of each file, MiB (above the site's limit, the demo site's limit is raised first).
    #[arg(long, default_value_t = 10.0)]
    mb: f64,
    /// RSS sampling interval, milliseconds.
    #[arg(long, default_value_t = 20)]
    sample_ms: u64,
    /// Admin login used to raise the demo site's file limit (started servers: the demo admin).
    #[arg(long, default_value = "admin@example.com")]
    admin_email: String,
    #[arg(long, default_value = "bench-password-1")]
    admin_password: String,
}

// ---------------------------------------------------------------- conversations

struct ConvRun {
    conversations: usize,
    rate: f64,
    messages: usize,
}

async fn run_conversations(
    server: &Server,
    load: &LoadArgs,
    shape: &ConvRun,
    label: &str,
) -> anyhow::Result<Value> {
    let api_key = server
        .api_key
        .clone()
        .ok_or_else(|| anyhow!("the agents need a chat-scope API key: --api-key"))?;
    let params = ConvParams {
        url: server.url.clone(),
        api_key,
        transport: load.transport,
        conversations: shape.conversations,
        rate: shape.rate,
        messages: shape.messages,
        payload: load.payload,
        reply: load.reply,
        drain_ms: load.drain_ms,
        agent_conns: load.agent_conns,
        source_ips: load.source_ips,
        setup_concurrency: load.setup_concurrency,
        threads: load.threads,
        inbox_streams: load.inbox_streams,
    };
    let parts = split(shape.conversations, load.workers);
    log(format!(
        "conversations: {} pairs x {} msgs @ {}/s ({} msg/s offered), {} B, transport {:?}{}, {} load process(es)",
        shape.conversations,
        shape.messages,
        shape.rate,
        shape.conversations as f64 * shape.rate,
        load.payload,
        load.transport,
        if load.reply { ", agents reply" } else { "" },
        parts.len()
    ));
    let mut ws = Vec::new();
    for (i, (first, count)) in parts.iter().enumerate() {
        let job = ConvJob {
            params: params.clone(),
            worker: i,
            first: *first,
            count: *count,
        };
        ws.push(Worker::spawn(i, &json!({ "conv": job })).await?);
    }
    let ready = recv_all(&mut ws, "ready", Duration::from_secs(600)).await?;
    let pairs_ready: u64 = ready.iter().map(|r| r["pairs"].as_u64().unwrap_or(0)).sum();
    let setup_ms = ready
        .iter()
        .map(|r| r["setup_ms"].as_u64().unwrap_or(0))
        .max()
        .unwrap_or(0);
    log(format!(
        "{pairs_ready}/{} pairs ready in {setup_ms} ms",
        shape.conversations
    ));
    let start_in = Duration::from_millis(300);
    let start_at = unix_ns() + start_in.as_nanos() as u64;
    send_all(&mut ws, &json!({ "type": "start", "at_unix_ns": start_at })).await?;
    tokio::time::sleep(start_in).await;
    let s0 = server.pid.and_then(procfs::sample);
    let m0 = procfs::machine();
    let run_budget = Duration::from_secs_f64(shape.messages as f64 / shape.rate)
        + Duration::from_millis(load.drain_ms)
        + Duration::from_secs(60);
    let done = recv_all(&mut ws, "done", run_budget).await?;
    let s1 = server.pid.and_then(procfs::sample);
    let m1 = procfs::machine();
    send_all(&mut ws, &json!({ "type": "exit" })).await?;
    drop(ws);
    let results: Vec<ConvResult> = done
        .into_iter()
        .map(|d| serde_json::from_value(d["result"].clone()))
        .collect::<Result<_, _>>()?;
    Ok(summarise_conv(
        &params,
        load,
        label,
        &results,
        pairs_ready,
        setup_ms,
        (s0, s1),
        (m0, m1),
    ))
}

#[allow(clippy::too_many_arguments)]
fn summarise_conv(
    p: &ConvParams,
    load: &LoadArgs,
    label: &str,
    rs: &[ConvResult],
    pairs_ready: u64,
    setup_ms: u64,
    server: (Option<procfs::ProcSample>, Option<procfs::ProcSample>),
    machine: (procfs::MachineSample, procfs::MachineSample),
) -> Value {
    let sum = |f: fn(&ConvResult) -> u64| rs.iter().map(f).sum::<u64>();
    let merge = |f: fn(&ConvResult) -> &hist::SparseHist| {
        let mut h = Hist::default();
        for r in rs {
            h.merge(&Hist::from_sparse(f(r)));
        }
        h
    };
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for r in rs {
        for (k, v) in &r.errors {
            *errors.entry(k.clone()).or_default() += v;
        }
    }
    let errors_total: u64 = errors.values().sum();
    let sent = sum(|r| r.sent);
    let delivered = sum(|r| r.delivered);
    let duplicates = sum(|r| r.duplicates);
    let first_send = rs.iter().map(|r| r.first_send_ns).min().unwrap_or(0);
    let last_recv = rs.iter().map(|r| r.last_recv_ns).max().unwrap_or(0);
    let window_s = rs.iter().map(|r| r.end_ns).max().unwrap_or(0) as f64 / 1e9;
    let span = (last_recv.saturating_sub(first_send)) as f64 / 1e9;
    let throughput = if span > 0.0 {
        delivered as f64 / span
    } else {
        0.0
    };
    let latency = merge(|r| &r.latency);
    let tck = procfs::clk_tck();
    let load_cpu: Vec<f64> = rs
        .iter()
        .map(|r| {
            let secs = r.end_ns as f64 / 1e9;
            if secs > 0.0 {
                r1(r.cpu_ticks as f64 / tck / secs * 100.0)
            } else {
                0.0
            }
        })
        .collect();
    let load_cpu_total: f64 = load_cpu.iter().sum();
    let server_cpu = match server {
        (Some(a), Some(b)) => Some(procfs::cpu_pct(&a, &b)),
        _ => None,
    };
    let server_cpu_us_per_msg = match server {
        (Some(a), Some(b)) if delivered > 0 => Some(r1(b.ticks.saturating_sub(a.ticks) as f64
            / tck
            * 1e6
            / delivered as f64)),
        _ => None,
    };
    let machine_cpu = procfs::machine_pct(&machine.0, &machine.1);
    let offered = p.conversations as f64 * p.rate;
    let p99_ms = latency.quantile_us(0.99) as f64 / 1000.0;
    let lost = sent.saturating_sub(delivered);
    let inbox_streams = sum(|r| r.inbox_streams);
    let inbox_messages = sum(|r| r.inbox_messages);
    let inbox_replies = sum(|r| r.inbox_replies);
    let inbox_latency = merge(|r| &r.inbox_latency);
    let inbox_missed = (inbox_streams * delivered).saturating_sub(inbox_messages)
        + (inbox_streams * sum(|r| r.replies_delivered)).saturating_sub(inbox_replies);
    let pass = lost == 0
        && errors_total == 0
        && inbox_streams == p.inbox_streams as u64
        && inbox_missed == 0
        && inbox_latency.quantile_us(0.99) as f64 / 1000.0 <= load.p99_ms
        && duplicates == 0
        && pairs_ready == p.conversations as u64
        && latency.len() > 0
        && p99_ms <= load.p99_ms;
    json!({
        "mode": "conversations",
        "label": label,
        "params": {
            "conversations": p.conversations,
            "messages": p.messages,
            "rate": p.rate,
            "payload": p.payload,
            "reply": p.reply,
            "transport": p.transport,
            "loadProcs": rs.len(),
            "threads": p.threads,
            "agentConns": p.agent_conns,
            "inboxStreams": p.inbox_streams,
        },
        "offeredRate": offered,
        "pairsReady": pairs_ready,
        "setupMs": setup_ms,
        "sent": sent,
        "notSent": sum(|r| r.not_sent),
        "acked": sum(|r| r.acked),
        "delivered": delivered,
        "lost": lost,
        "ackedNotDelivered": sum(|r| r.acked_not_delivered),
        "deliveredNotAcked": sum(|r| r.delivered_not_acked),
        "duplicates": duplicates,
        "outOfOrder": sum(|r| r.out_of_order),
        "echoesToSender": sum(|r| r.echoes),
        "errors": errors,
        "errorsTotal": errors_total,
        "throughput": r1(throughput),
        "latencyMs": latency.summary_ms(),
        "latencyFromSendMs": merge(|r| &r.latency_from_send).summary_ms(),
        "ackMs": merge(|r| &r.ack).summary_ms(),
        "sendLagMs": merge(|r| &r.lag).summary_ms(),
        "reply": {
            "sent": sum(|r| r.replies_sent),
            "delivered": sum(|r| r.replies_delivered),
            "duplicates": sum(|r| r.reply_duplicates),
            "latencyMs": merge(|r| &r.reply_latency).summary_ms(),
        },
        "inbox": {
            "streams": inbox_streams,
            "messages": inbox_messages,
            "replies": inbox_replies,
            "missed": inbox_missed,
            "events": sum(|r| r.inbox_events),
            "latencyMs": inbox_latency.summary_ms(),
        },
        "server": {
            "cpuPct": server_cpu.map(r1),
            "cpuUsPerDeliveredMsg": server_cpu_us_per_msg,
            "rssMB": server.1.map(|s| r1(s.rss_kb as f64 / 1024.0)),
            "peakRssMB": server.1.map(|s| r1(s.hwm_kb as f64 / 1024.0)),
        },
        "loadgen": {
            "cpuPct": r1(load_cpu_total),
            "cpuPctPerProc": load_cpu,
            "peakRssMB": rs.iter().map(|r| r1(r.max_rss_kb as f64 / 1024.0)).collect::<Vec<_>>(),
        },
        "machine": {
            "cpus": procfs::cpus(),
            "cpuPct": r1(machine_cpu),
            "otherCpuPct": server_cpu.map(|s| r1(machine_cpu - s - load_cpu_total)),
        },
        "windowS": r3(window_s),
        "p99LimitMs": load.p99_ms,
        "pass": pass,
    })
}

fn ms(v: &Value, q: &str) -> String {
    match v[q].as_f64() {
        Some(x) => format!("{x:.2}"),
        None => "-".into(),
    }
}

fn conv_table_header() -> String {
    format!(
        "{:>9} {:>9} {:>9} {:>6} {:>5} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>6} {:>6} {:>6} {:>6} {:>7} {:>5}",
        "offered/s",
        "deliv/s",
        "sent",
        "lost",
        "err",
        "p50ms",
        "p90ms",
        "p99ms",
        "p999ms",
        "maxms",
        "lagp99ms",
        "srv%",
        "gen%",
        "mach%",
        "othr%",
        "srvRSS",
        "pass"
    )
}

fn conv_table_row(v: &Value) -> String {
    let l = &v["latencyMs"];
    let f = |x: &Value| x.as_f64().map(|x| format!("{x:.0}")).unwrap_or("-".into());
    format!(
        "{:>9} {:>9} {:>9} {:>6} {:>5} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>6} {:>6} {:>6} {:>6} {:>7} {:>5}",
        f(&v["offeredRate"]),
        f(&v["throughput"]),
        v["sent"].to_string(),
        v["lost"].to_string(),
        v["errorsTotal"].to_string(),
        ms(l, "p50"),
        ms(l, "p90"),
        ms(l, "p99"),
        ms(l, "p999"),
        ms(l, "max"),
        ms(&v["sendLagMs"], "p99"),
        f(&v["server"]["cpuPct"]),
        f(&v["loadgen"]["cpuPct"]),
        f(&v["machine"]["cpuPct"]),
        f(&v["machine"]["otherCpuPct"]),
        v["server"]["peakRssMB"]
            .as_f64()
            .map(|x| format!("{x:.0}MB"))
            .unwrap_or("-".into()),
        if v["pass"].as_bool() == Some(true) {
            "yes"
        } else {
            "NO"
        },
    )
}

fn print_conv_details(v: &Value) {
    println!(
        "transport {}  pairs {}/{}  payload {} B  reply {}  load procs {}",
        v["params"]["transport"],
        v["pairsReady"],
        v["params"]["conversations"],
        v["params"]["payload"],
        v["params"]["reply"],
        v["params"]["loadProcs"]
    );
    println!(
        "sent {}  acked {}  delivered {}  lost {}  acked-but-never-delivered {}  duplicates {}  out-of-order {}  errors {}",
        v["sent"],
        v["acked"],
        v["delivered"],
        v["lost"],
        v["ackedNotDelivered"],
        v["duplicates"],
        v["outOfOrder"],
        v["errors"]
    );
    let line = |name: &str, h: &Value| {
        println!(
            "{name:<28} p50 {:>7}  p90 {:>7}  p99 {:>7}  p99.9 {:>7}  max {:>8}  (n {})",
            ms(h, "p50"),
            ms(h, "p90"),
            ms(h, "p99"),
            ms(h, "p999"),
            ms(h, "max"),
            h["n"]
        );
    };
    line("latency ms (from schedule)", &v["latencyMs"]);
    line("latency ms (from send)", &v["latencyFromSendMs"]);
    line("publish ack ms", &v["ackMs"]);
    line("send lag ms", &v["sendLagMs"]);
    if v["params"]["reply"].as_bool() == Some(true) {
        line("reply latency ms", &v["reply"]["latencyMs"]);
        println!(
            "replies sent {}  delivered {}",
            v["reply"]["sent"], v["reply"]["delivered"]
        );
    }
    if v["params"]["inboxStreams"].as_u64().unwrap_or(0) > 0 {
        let i = &v["inbox"];
        line("inbox latency ms", &i["latencyMs"]);
        println!(
            "inbox streams {}  visitor messages seen {}  replies seen {}  missed {}  events {}",
            i["streams"], i["messages"], i["replies"], i["missed"], i["events"]
        );
    }
    println!(
        "server cpu {}% ({} us/msg)  peak RSS {} MB   loadgen cpu {}%   machine {}% (other {}%)",
        v["server"]["cpuPct"],
        v["server"]["cpuUsPerDeliveredMsg"],
        v["server"]["peakRssMB"],
        v["loadgen"]["cpuPct"],
        v["machine"]["cpuPct"],
        v["machine"]["otherCpuPct"]
    );
}

fn messages_for(rate: f64, messages: Option<usize>, duration: f64) -> usize {
    messages.unwrap_or_else(|| ((rate * duration).round() as usize).max(1))
}

async fn cmd_conversations(a: ConvArgs) -> anyhow::Result<()> {
    let server = open_server(&a.server)?;
    let shape = ConvRun {
        conversations: a.conversations,
        rate: a.rate,
        messages: messages_for(a.rate, a.messages, a.duration_secs),
    };
    let v = run_conversations(&server, &a.load, &shape, &a.server.label).await?;
    drop(server);
    if a.server.json {
        print_json(&v);
    } else {
        println!("{}", conv_table_header());
        println!("{}", conv_table_row(&v));
        print_conv_details(&v);
    }
    if a.server.check {
        let bad = |k: &str| v[k].as_u64().unwrap_or(1) > 0;
        if bad("lost")
            || bad("errorsTotal")
            || bad("duplicates")
            || bad("ackedNotDelivered")
            || v["pairsReady"].as_u64() != Some(a.conversations as u64)
            || (a.load.reply && v["reply"]["delivered"] != v["reply"]["sent"])
        {
            bail!("check failed: something was lost, duplicated or failed");
        }
    }
    Ok(())
}

fn parse_steps(s: &str) -> anyhow::Result<Vec<(usize, f64)>> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|x| !x.is_empty())
        .map(|x| {
            let (c, r) = x
                .split_once(':')
                .ok_or_else(|| anyhow!("step {x:?}: expected conversations:rate"))?;
            Ok((c.parse()?, r.parse()?))
        })
        .collect()
}

async fn cmd_ramp(a: RampArgs) -> anyhow::Result<()> {
    let steps = parse_steps(&a.steps)?;
    let external = if a.server.server_bin.is_none() {
        Some(open_server(&a.server)?)
    } else {
        None
    };
    if !a.server.json {
        println!("{}", conv_table_header());
    }
    let mut out = Vec::new();
    let mut fails = 0;
    let mut best: Option<Value> = None;
    for (conversations, rate) in steps {
        let fresh = match &external {
            Some(_) => None,
            None => Some(open_server(&a.server)?),
        };
        let server = external.as_ref().or(fresh.as_ref()).expect("a server");
        let shape = ConvRun {
            conversations,
            rate,
            messages: messages_for(rate, None, a.duration_secs),
        };
        let v = match run_conversations(server, &a.load, &shape, &a.server.label).await {
            Ok(v) => v,
            Err(e) => json!({"mode": "conversations", "offeredRate": conversations as f64 * rate,
                             "error": e.to_string(), "pass": false}),
        };
        drop(fresh);
        if !a.server.json {
            if v.get("error").is_some() {
                println!("{:>9} error: {}", v["offeredRate"], v["error"]);
            } else {
                println!("{}", conv_table_row(&v));
            }
        }
        if v["pass"].as_bool() == Some(true) {
            fails = 0;
            if best
                .as_ref()
                .is_none_or(|b| b["offeredRate"].as_f64() < v["offeredRate"].as_f64())
            {
                best = Some(v.clone());
            }
        } else {
            fails += 1;
        }
        out.push(v);
        if a.stop_after_fails > 0 && fails >= a.stop_after_fails {
            log(format!("{fails} failing steps in a row: stopping"));
            break;
        }
        if external.is_some() {
            tokio::time::sleep(Duration::from_secs_f64(a.pause_secs)).await;
        }
    }
    let summary = json!({
        "mode": "ramp",
        "label": a.server.label,
        "p99LimitMs": a.load.p99_ms,
        "transport": a.load.transport,
        "bestOfferedRate": best.as_ref().map(|b| b["offeredRate"].clone()),
        "bestThroughput": best.as_ref().map(|b| b["throughput"].clone()),
        "steps": out,
    });
    if a.server.json {
        print_json(&summary);
    } else {
        println!(
            "highest passing step (p99 <= {} ms, nothing lost, no errors): {} msg/s offered, {} delivered/s",
            a.load.p99_ms, summary["bestOfferedRate"], summary["bestThroughput"]
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- idle

async fn cmd_idle(a: IdleArgs) -> anyhow::Result<()> {
    let server = open_server(&a.server)?;
    let params = IdleParams {
        url: server.url.clone(),
        transport: a.transport,
        streams_per_conn: a.streams_per_conn,
        source_ips: a.source_ips,
        concurrency: a.concurrency,
    };
    if a.transport == Transport::Chat {
        anyhow::bail!("idle holds Subscribe streams: use --transport native or web");
    }
    let parts = split(a.streams, a.workers);
    log(format!(
        "idle: {} {:?} streams{}, {} load process(es), hold {} s",
        a.streams,
        a.transport,
        if a.transport == Transport::Native {
            format!(" ({} per connection)", a.streams_per_conn)
        } else {
            String::new()
        },
        parts.len(),
        a.hold_secs
    ));
    let before_sessions = server.pid.and_then(procfs::sample);
    let mut ws = Vec::new();
    for (i, (first, count)) in parts.iter().enumerate() {
        let job = IdleJob {
            params: params.clone(),
            worker: i,
            first: *first,
            count: *count,
        };
        ws.push(Worker::spawn(i, &json!({ "idle": job })).await?);
    }
    let long = Duration::from_secs(900);
    let sess = recv_all(&mut ws, "sessions", long).await?;
    let sessions_ok: u64 = sess.iter().map(|v| v["ok"].as_u64().unwrap_or(0)).sum();
    log(format!("{sessions_ok} visitor sessions"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let base = server.pid.and_then(procfs::sample);
    send_all(&mut ws, &json!({"type": "open"})).await?;
    let opened = recv_all(&mut ws, "opened", long).await?;
    let ok: u64 = opened.iter().map(|v| v["ok"].as_u64().unwrap_or(0)).sum();
    let failed: u64 = opened
        .iter()
        .map(|v| v["failed"].as_u64().unwrap_or(0))
        .sum();
    let open_ms = opened
        .iter()
        .map(|v| v["ms"].as_u64().unwrap_or(0))
        .max()
        .unwrap_or(0);
    log(format!(
        "{ok} streams open ({failed} failed) in {open_ms} ms; holding"
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_open = server.pid.and_then(procfs::sample);
    tokio::time::sleep(Duration::from_secs_f64(a.hold_secs)).await;
    let after_hold = server.pid.and_then(procfs::sample);
    send_all(&mut ws, &json!({"type": "status"})).await?;
    let status = recv_all(&mut ws, "status", Duration::from_secs(60)).await?;
    send_all(&mut ws, &json!({"type": "exit"})).await?;
    drop(ws);
    drop(server);
    let ended: u64 = status
        .iter()
        .map(|v| v["ended"].as_u64().unwrap_or(0))
        .sum();
    let heartbeats: u64 = status
        .iter()
        .map(|v| v["heartbeats"].as_u64().unwrap_or(0))
        .sum();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for v in &status {
        if let Some(m) = v["errors"].as_object() {
            for (k, n) in m {
                *errors.entry(k.clone()).or_default() += n.as_u64().unwrap_or(0);
            }
        }
    }
    let load_rss_kb: u64 = status
        .iter()
        .map(|v| v["rss_kb"].as_u64().unwrap_or(0))
        .sum();
    let per = |a: Option<procfs::ProcSample>, b: Option<procfs::ProcSample>, n: u64| match (a, b) {
        (Some(a), Some(b)) if n > 0 => Some(r3((b.rss_kb as f64 - a.rss_kb as f64) / n as f64)),
        _ => None,
    };
    let mb = |s: Option<procfs::ProcSample>| s.map(|s| r1(s.rss_kb as f64 / 1024.0));
    let v = json!({
        "mode": "idle",
        "label": a.server.label,
        "params": {
            "streams": a.streams,
            "transport": a.transport,
            "streamsPerConn": if a.transport == Transport::Native { a.streams_per_conn } else { 1 },
            "loadProcs": parts.len(),
            "sourceIps": a.source_ips,
            "holdSecs": a.hold_secs,
        },
        "sessions": sessions_ok,
        "opened": ok,
        "failed": failed,
        "endedDuringHold": ended,
        "stillOpenAfterHold": ok.saturating_sub(ended),
        "heartbeats": heartbeats,
        "errors": errors,
        "errorsTotal": errors.values().sum::<u64>(),
        "openMs": open_ms,
        "openRate": if open_ms > 0 { r1(ok as f64 / (open_ms as f64 / 1000.0)) } else { 0.0 },
        "server": {
            "rssBeforeSessionsMB": mb(before_sessions),
            "rssBaseMB": mb(base),
            "rssOpenMB": mb(after_open),
            "rssAfterHoldMB": mb(after_hold),
            "peakRssMB": after_hold.map(|s| r1(s.hwm_kb as f64 / 1024.0)),
            "rssPerStreamKB": per(base, after_open, ok),
            "rssPerStreamAfterHoldKB": per(base, after_hold, ok),
            "rssPerVisitorInclSessionKB": per(before_sessions, after_hold, ok),
            "idleCpuPct": match (after_open, after_hold) {
                (Some(x), Some(y)) => Some(r1(procfs::cpu_pct(&x, &y))),
                _ => None,
            },
        },
        "loadgen": {
            "rssMB": r1(load_rss_kb as f64 / 1024.0),
            "rssPerStreamKB": if ok > 0 { Some(r3(load_rss_kb as f64 / ok as f64)) } else { None },
        },
    });
    if a.server.json {
        print_json(&v);
    } else {
        println!(
            "idle {} streams ({}, {} per connection): opened {} failed {} ended-during-hold {} heartbeats {} errors {}",
            a.streams,
            v["params"]["transport"],
            v["params"]["streamsPerConn"],
            ok,
            failed,
            ended,
            heartbeats,
            v["errors"]
        );
        println!("open time {} ms ({} streams/s)", open_ms, v["openRate"]);
        let s = &v["server"];
        println!(
            "server RSS MB: before sessions {}  base {}  open {}  after hold {}  peak {}",
            s["rssBeforeSessionsMB"],
            s["rssBaseMB"],
            s["rssOpenMB"],
            s["rssAfterHoldMB"],
            s["peakRssMB"]
        );
        println!(
            "server RSS per stream: {} KB (after hold {} KB; incl. session {} KB)   idle CPU {}%",
            s["rssPerStreamKB"],
            s["rssPerStreamAfterHoldKB"],
            s["rssPerVisitorInclSessionKB"],
            s["idleCpuPct"]
        );
        println!("load generator RSS: {} MB", v["loadgen"]["rssMB"]);
    }
    if a.server.check && (failed > 0 || ended > 0 || ok != a.streams as u64) {
        bail!("check failed: {failed} streams failed to open, {ended} ended early");
    }
    Ok(())
}

// ---------------------------------------------------------------- upload

async fn cmd_upload(a: UploadArgs) -> anyhow::Result<()> {
    if a.uploads == 0 || a.mb <= 0.0 {
        bail!("--uploads and --mb must be positive");
    }
    let server = open_server(&a.server)?;
    let addr = net::loopback_addr(&server.url)?;
    let len = (a.mb * 1024.0 * 1024.0).round() as u64;
    if len > upload::DEFAULT_SITE_MAX {
        upload::raise_site_limit(addr, &a.admin_email, &a.admin_password, len).await?;
    }
    let token = upload::visitor_token(addr).await?;
    let (first, block) = upload::blocks();
    // Warm-up: one small upload, so idle includes what the first upload sets up once.
    let warm = upload::upload_once(
        addr,
        &token,
        "warm-up.pdf",
        first.clone(),
        block.clone(),
        upload::BLOCK as u64,
    )
    .await;
    upload::check_stored(&warm, upload::BLOCK as u64).context("warm-up upload")?;
    log(format!(
        "upload: {} concurrent uploads of {} MiB ({} bytes each), {} KiB frames",
        a.uploads,
        a.mb,
        len,
        upload::BLOCK / 1024
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = server.pid.and_then(procfs::sample);
    let sampler = server
        .pid
        .map(|pid| upload::RssSampler::start(pid, Duration::from_millis(a.sample_ms)));
    let m0 = procfs::machine();
    let t0 = std::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..a.uploads {
        let (token, first, block) = (token.clone(), first.clone(), block.clone());
        tasks.push(tokio::spawn(async move {
            upload::upload_once(addr, &token, &format!("bench-{i}.pdf"), first, block, len).await
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await?);
    }
    let wall = t0.elapsed().as_secs_f64();
    let m1 = procfs::machine();
    let after = server.pid.and_then(procfs::sample);
    let (peak_kb, samples) = sampler.map(|s| s.finish()).unwrap_or((0, 0));
    drop(server);

    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for o in &outcomes {
        if let Err(e) = upload::check_stored(o, len) {
            *errors.entry(e.to_string()).or_default() += 1;
        }
    }
    let ok = outcomes.len() as u64 - errors.values().sum::<u64>();
    let mut secs: Vec<f64> = outcomes.iter().map(|o| o.elapsed.as_secs_f64()).collect();
    secs.sort_by(f64::total_cmp);
    let mib = len as f64 / (1024.0 * 1024.0);
    let stored_mib = ok as f64 * mib;
    let cpu_s = match (idle, after) {
        (Some(x), Some(y)) => Some(r3(
            y.ticks.saturating_sub(x.ticks) as f64 / procfs::clk_tck()
        )),
        _ => None,
    };
    let idle_kb = idle.map(|s| s.rss_kb);
    let growth_mb = idle_kb.map(|i| r1(peak_kb.saturating_sub(i) as f64 / 1024.0));
    let v = json!({
        "mode": "upload",
        "label": a.server.label,
        "params": { "uploads": a.uploads, "mib": a.mb, "bytes": len, "frameBytes": upload::BLOCK, "sampleMs": a.sample_ms },
        "ok": ok,
        "errors": errors,
        "wallS": r3(wall),
        "throughputMBps": r1(stored_mib / wall),
        "uploadS": {
            "p50": r3(upload::quantile(&secs, 0.5)),
            "p99": r3(upload::quantile(&secs, 0.99)),
            "min": r3(secs.first().copied().unwrap_or(0.0)),
            "max": r3(secs.last().copied().unwrap_or(0.0)),
        },
        "server": {
            "cpuS": cpu_s,
            "cpuMsPerMB": cpu_s.filter(|_| stored_mib > 0.0).map(|c| r1(c * 1000.0 / stored_mib)),
            "rssIdleMB": idle_kb.map(|k| r1(k as f64 / 1024.0)),
            "rssPeakMB": server_pid_mb(peak_kb, samples),
            "rssGrowthMB": growth_mb,
            "rssAfterMB": after.map(|s| r1(s.rss_kb as f64 / 1024.0)),
            "rssSamples": samples,
        },
        "machine": { "cpus": procfs::cpus(), "cpuPct": r1(procfs::machine_pct(&m0, &m1)) },
    });
    if a.server.json {
        print_json(&v);
    } else {
        println!(
            "{ok}/{} uploads of {} MiB stored in {:.2} s: {} MB/s",
            a.uploads, a.mb, wall, v["throughputMBps"]
        );
        let u = &v["uploadS"];
        println!(
            "per upload: p50 {:.0} ms, p99 {:.0} ms (min {:.0}, max {:.0})",
            u["p50"].as_f64().unwrap_or(0.0) * 1000.0,
            u["p99"].as_f64().unwrap_or(0.0) * 1000.0,
            u["min"].as_f64().unwrap_or(0.0) * 1000.0,
            u["max"].as_f64().unwrap_or(0.0) * 1000.0
        );
        let s = &v["server"];
        println!(
            "server: CPU {} s ({} ms per MB); RSS idle {} MB, peak {} MB, growth {} MB ({} samples), after {} MB; machine CPU {}%",
            s["cpuS"],
            s["cpuMsPerMB"],
            s["rssIdleMB"],
            s["rssPeakMB"],
            s["rssGrowthMB"],
            s["rssSamples"],
            s["rssAfterMB"],
            v["machine"]["cpuPct"]
        );
        for (e, n) in &errors {
            println!("error x{n}: {e}");
        }
    }
    if a.server.check && ok != a.uploads as u64 {
        bail!(
            "check failed: {} of {} uploads were not stored whole",
            a.uploads as u64 - ok,
            a.uploads
        );
    }
    Ok(())
}

fn server_pid_mb(peak_kb: u64, samples: u64) -> Option<f64> {
    (samples > 0).then(|| r1(peak_kb as f64 / 1024.0))
}

// ---------------------------------------------------------------- burst

#[derive(Args, Clone)]
struct BurstArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Visitors, each opening one conversation.
    #[arg(long, default_value_t = 5000)]
    visitors: usize,
    /// The arrival window: arrivals evenly spread over it (open loop).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// The demo site's topic every conversation is opened on.
    #[arg(long, default_value = "Order")]
    topic: String,
    /// Agents of the topic, online from the start (created for the run).
    #[arg(long, default_value_t = 20)]
    agents: usize,
    /// Open conversations per agent at most.
    #[arg(long, default_value_t = 5)]
    capacity: u32,
    /// An agent resolves a conversation this long after it saw it assigned to itself.
    #[arg(long, default_value_t = 500)]
    hold_ms: u64,
    /// No agent online at all: arrivals only, the queue grows (positions still checked).
    #[arg(long, conflicts_with = "hold_until_arrivals_done")]
    no_agents: bool,
    /// Agents online from the start, but resolving only after every arrival is acked.
    #[arg(long)]
    hold_until_arrivals_done: bool,
    /// Visitor streams (and their publishes) sharing one HTTP/2 connection.
    #[arg(long, default_value_t = 100)]
    visitors_per_conn: usize,
    /// Queue positions are judged at this interval.
    #[arg(long, default_value_t = 100)]
    sample_ms: u64,
    /// After the last change, how long to wait for every view to be exact.
    #[arg(long, default_value_t = 10.0)]
    settle_secs: f64,
    /// After the arrivals, how long to wait for the queue to be empty.
    #[arg(long, default_value_t = 180.0)]
    drain_timeout_secs: f64,
    /// Visitor sessions and streams set up at once (before the window).
    #[arg(long, default_value_t = 64)]
    setup_concurrency: usize,
    /// Runtime threads of this process.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Admin login that creates the agents (started servers: the demo admin).
    #[arg(long, default_value = "admin@example.com")]
    admin_email: String,
    #[arg(long, default_value = "bench-password-1")]
    admin_password: String,
}

async fn cmd_burst(a: BurstArgs) -> anyhow::Result<()> {
    let server = open_server(&a.server)?;
    let params = burst::BurstParams {
        url: server.url.clone(),
        pid: server.pid,
        label: a.server.label.clone(),
        visitors: a.visitors,
        seconds: a.seconds,
        topic: a.topic.clone(),
        agents: a.agents,
        capacity: a.capacity,
        hold_ms: a.hold_ms,
        no_agents: a.no_agents,
        hold_until_arrivals_done: a.hold_until_arrivals_done,
        visitors_per_conn: a.visitors_per_conn,
        sample_ms: a.sample_ms,
        settle_secs: a.settle_secs,
        drain_timeout_secs: a.drain_timeout_secs,
        setup_concurrency: a.setup_concurrency,
        threads: a.threads,
        admin_email: a.admin_email.clone(),
        admin_password: a.admin_password.clone(),
    };
    log(format!(
        "burst: {} visitors in {} s on {:?}, {}",
        a.visitors,
        a.seconds,
        a.topic,
        if a.no_agents {
            "no agents".to_owned()
        } else {
            format!(
                "{} agents x {}, hold {} ms",
                a.agents, a.capacity, a.hold_ms
            )
        }
    ));
    let v = burst::run(&params).await?;
    drop(server);
    if a.server.json {
        print_json(&v);
    } else {
        burst::print_table(&v);
    }
    if a.server.check {
        let n = |x: &Value| x.as_u64().unwrap_or(0);
        if n(&v["errorsTotal"]) > 0
            || n(&v["arrivals"]["acked"]) != a.visitors as u64
            || (!a.no_agents && v["drain"]["drained"] != true)
            || (v["consistency"]["judged"] == true && v["consistency"]["never"] == true)
        {
            bail!(
                "check failed: errors, arrivals not acked, the queue not drained or views never consistent"
            );
        }
    }
    Ok(())
}

#[derive(Args)]
struct HistoryArgs {
    /// The `wsmschat` binary: it seeds a new database (`seed-history`), then serves it.
    #[arg(long)]
    server_bin: PathBuf,
    /// Extra environment for the seeder and the server (repeat): KEY=VALUE, e.g.
    /// WSMSCHAT_DATABASE_URL=postgres://... for PostgreSQL (use a new, empty database).
    #[arg(long = "server-env", value_parser = parse_kv)]
    server_env: Vec<(String, String)>,
    /// Conversations (one visitor each).
    #[arg(long, default_value_t = 100_000)]
    conversations: u64,
    /// Messages in all.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Messages of the one big conversation (history paging and resume read it).
    #[arg(long, default_value_t = 10_000)]
    big: u64,
    /// Measured calls of each kind.
    #[arg(long, default_value_t = 200)]
    calls: usize,
    /// A resume replays this many messages.
    #[arg(long, default_value_t = 100)]
    resume_behind: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Free text copied into the result.
    #[arg(long, default_value = "")]
    label: String,
    /// Exit with an error if any answer was wrong or failed (never on timing).
    #[arg(long)]
    check: bool,
}

async fn cmd_history(a: HistoryArgs) -> anyhow::Result<()> {
    if a.conversations < 2 || a.big > a.messages || a.resume_behind >= a.big {
        bail!("need --conversations >= 2, --big <= --messages and --resume-behind < --big");
    }
    let mut seed_secs = 0.0;
    let mut db_bytes = None;
    let engine = match a
        .server_env
        .iter()
        .any(|(k, _)| k == "WSMSCHAT_DATABASE_URL")
    {
        true => "postgres",
        false => "sqlite",
    };
    let server = Server::spawn_prepared(&a.server_bin, &a.server_env, None, |dir| {
        log(format!(
            "history: seeding {} conversations, {} messages",
            a.conversations, a.messages
        ));
        let t = std::time::Instant::now();
        let out = std::process::Command::new(&a.server_bin)
            .arg("seed-history")
            .arg("--data-dir")
            .arg(dir)
            .arg("--conversations")
            .arg(a.conversations.to_string())
            .arg("--messages")
            .arg(a.messages.to_string())
            .arg("--big")
            .arg(a.big.to_string())
            .envs(a.server_env.iter().cloned())
            .env("RUST_LOG", "warn")
            .stderr(Stdio::inherit())
            .output()?;
        if !out.status.success() {
            bail!("seed-history failed");
        }
        seed_secs = t.elapsed().as_secs_f64();
        db_bytes = std::fs::metadata(dir.join("wsmschat.db"))
            .ok()
            .map(|m| m.len());
        Ok(())
    })?;
    log(format!(
        "started {} (pid {})",
        server.url,
        server.pid.unwrap_or(0)
    ));
    let params = history::HistoryParams {
        url: server.url.clone(),
        pid: server.pid,
        api_key: server.api_key.clone().expect("started"),
        label: a.label.clone(),
        conversations: a.conversations,
        messages: a.messages,
        big: a.big,
        calls: a.calls,
        resume_behind: a.resume_behind,
        seed_secs,
        db_bytes,
        engine: engine.into(),
    };
    let v = history::run(&params).await?;
    drop(server);
    if a.json {
        print_json(&v);
    } else {
        history::print_table(&v);
    }
    if a.check && v["errorsTotal"].as_u64() != Some(0) {
        bail!("check failed: {} wrong or failed answers", v["errorsTotal"]);
    }
    Ok(())
}

// ---------------------------------------------------------------- the load process

fn worker_main() -> anyhow::Result<()> {
    let mut first = String::new();
    std::io::stdin().read_line(&mut first)?;
    let job: Value = serde_json::from_str(&first).context("worker job")?;
    let threads = job["conv"]["params"]["threads"].as_u64().unwrap_or(1) as usize;
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    let result = rt.block_on(async move {
        if job.get("conv").is_some() {
            worker_conv(serde_json::from_value(job["conv"].clone())?).await
        } else {
            worker_idle(serde_json::from_value(job["idle"].clone())?).await
        }
    });
    if let Err(e) = &result {
        println!("{}", json!({"type": "error", "message": format!("{e:#}")}));
    }
    // Do not wait for open connections to close.
    std::process::exit(if result.is_ok() { 0 } else { 1 });
}

type Stdin = tokio::io::Lines<BufReader<tokio::io::Stdin>>;

async fn next_cmd(stdin: &mut Stdin) -> anyhow::Result<Value> {
    match stdin.next_line().await? {
        Some(l) => Ok(serde_json::from_str(&l)?),
        None => Ok(json!({"type": "exit"})),
    }
}

fn say(v: Value) {
    println!("{}", serde_json::to_string(&v).expect("serialisable"));
}

async fn worker_conv(job: ConvJob) -> anyhow::Result<()> {
    let stdin = Arc::new(tokio::sync::Mutex::new(
        BufReader::new(tokio::io::stdin()).lines(),
    ));
    let stdin2 = stdin.clone();
    let result = conv::run(job, move |pairs, setup_ms, errors| async move {
        say(json!({"type": "ready", "pairs": pairs, "setup_ms": setup_ms, "errors": errors}));
        let cmd = next_cmd(&mut *stdin2.lock().await).await?;
        let at = cmd["at_unix_ns"]
            .as_u64()
            .ok_or_else(|| anyhow!("expected a start time, got {cmd}"))?;
        Ok(at.saturating_sub(unix_ns()))
    })
    .await?;
    say(json!({"type": "done", "result": result}));
    let _ = next_cmd(&mut *stdin.lock().await).await;
    Ok(())
}

async fn worker_idle(job: IdleJob) -> anyhow::Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let state = Arc::new(IdleState::default());
    let tokens = idle::sessions(&job, &state).await?;
    let ok = tokens.iter().filter(|t| t.is_some()).count();
    say(json!({"type": "sessions", "ok": ok, "failed": tokens.len() - ok}));
    next_cmd(&mut stdin).await?;
    let (ok, failed, ms) = idle::open(&job, tokens, &state).await?;
    say(json!({"type": "opened", "ok": ok, "failed": failed, "ms": ms}));
    next_cmd(&mut stdin).await?;
    use std::sync::atomic::Ordering;
    say(json!({
        "type": "status",
        "opened": state.opened.load(Ordering::Relaxed),
        "ended": state.ended.load(Ordering::Relaxed),
        "heartbeats": state.heartbeats.load(Ordering::Relaxed),
        "errors": *state.errors.lock().unwrap(),
        "rss_kb": procfs::sample(std::process::id()).map(|s| s.rss_kb).unwrap_or(0),
    }));
    let _ = next_cmd(&mut stdin).await;
    Ok(())
}
