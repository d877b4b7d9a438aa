//! The `rill` command line, for any job registry: an embedded cluster (`local`), the
//! cluster's processes (`jobmanager`, `taskmanager`, and the external systems
//! `checkpoint-store`, `log-server`, `sink-store`), job submission (`run`), the jobs and
//! configuration keys (`jobs`, `config`), and a throughput benchmark (`bench`).
//!
//! A user's crate gets all of it in its own binary, so that its JobManager and every
//! TaskManager resolve the same jobs by name (as Flink users ship a jar):
//!
//! ```no_run
//! # use std::process::ExitCode;
//! #[tokio::main]
//! async fn main() -> ExitCode {
//!     rill::cli::main(rill::jobs::builtin()).await
//! }
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use crate::cluster::LocalCluster;
use crate::config::{known_keys, Configuration};
use crate::connectors::log_service::serve_log;
use crate::connectors::sink_journal::SinkJournal;
use crate::connectors::sink_service::serve_sink_store;
use crate::connectors::CollectStore;
use crate::events::{Events, FileEvents};
use crate::jobmanager::client::{submit_job, Accepted};
use crate::jobmanager::JobManagerServices;
use crate::jobs::JobRegistry;
use crate::rpc::{JobStatus, JobStatusReport};
use crate::state::{
    follow_health_file, serve_checkpoint_store, CheckpointStorage, GatedStore, JournaledStore,
    StoreHealth,
};
use crate::taskmanager::{memory_limit, TaskManager, TaskManagerOptions};
use crate::JobSpec;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "rill",
    version,
    about = "A Flink-style stream-processing runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ConfigArgs {
    /// Configuration override, Flink key=value (repeatable); `rill config` lists the keys.
    #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Read `security.cluster.secret` from this file (else from the environment variable
    /// RILL_CLUSTER_SECRET): never from the command line, where `ps` shows it to everyone.
    #[arg(long, value_name = "PATH")]
    secret_file: Option<std::path::PathBuf>,
    /// Read `security.sink-store.write-key` (JobManager and sink store only) from this file
    /// (else from the environment variable RILL_SINK_WRITE_KEY); `rill certs` writes one.
    #[arg(long, value_name = "PATH")]
    write_key_file: Option<std::path::PathBuf>,
    /// Serve or connect beyond loopback without TLS or with the development secret (the
    /// secret then crosses the network in the clear, and any peer can claim any name).
    #[arg(long)]
    insecure: bool,
}

/// Where the cluster secret comes from when no `--secret-file` is given.
pub const SECRET_ENV: &str = "RILL_CLUSTER_SECRET";
/// The shortest sink-store write key the command line takes.
const MIN_WRITE_KEY_CHARS: usize = 32;

/// Where the sink-store write key comes from when no `--write-key-file` is given.
pub const WRITE_KEY_ENV: &str = "RILL_SINK_WRITE_KEY";

#[derive(Args, Clone)]
struct EventsArgs {
    /// Also append every cluster event, typed, to this file (`rill::events::read_events`
    /// decodes it): how a harness running real processes judges them.
    #[arg(long, value_name = "PATH")]
    events: Option<std::path::PathBuf>,
}

impl EventsArgs {
    fn open(&self) -> Res<Events> {
        Ok(match &self.events {
            Some(path) => Events::new(
                FileEvents::open(path)
                    .map_err(|e| format!("events file {}: {e}", path.display()))?,
            ),
            None => Events::tracing(),
        })
    }
}

#[derive(Args, Clone)]
struct JobArgs {
    /// A job of this binary's registry; `jobs` lists them.
    #[arg(long)]
    job: String,
    /// Job parameter key=value (repeatable), e.g. records=1000000, sink=file:/tmp/out.
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// JobManager and TaskManagers in this process on loopback TCP; runs one job.
    Local {
        #[command(flatten)]
        job: JobArgs,
        #[arg(long, default_value_t = 2)]
        taskmanagers: u32,
        #[arg(long, default_value_t = 2)]
        slots: u32,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Runs a JobManager.
    Jobmanager {
        #[arg(long, default_value = "127.0.0.1:6123")]
        bind: String,
        #[command(flatten)]
        events: EventsArgs,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Serves a checkpoint store to JobManagers (`-c state.checkpoints.dir=rill://HOST:PORT`
    /// on the JobManager), keeping checkpoints as files under DIR, or in memory without one.
    CheckpointStore {
        #[arg(long, default_value = "127.0.0.1:6130")]
        bind: String,
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Follow this file's words, `fail` and `stall` (none: healthy), to refuse or hold
        /// every operation while they say so: how a harness injects a store failure.
        #[arg(long, value_name = "PATH")]
        health_control: Option<std::path::PathBuf>,
        /// Append every checkpoint stored to this file (`rill::state::read_journal` decodes
        /// it): how a harness running real processes learns what the store holds.
        #[arg(long, value_name = "PATH")]
        journal: Option<std::path::PathBuf>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Serves the input logs of a job by topic (its source names), for jobs run with
    /// `--param log=rill://HOST:PORT`: the job's own parameters say what the logs hold.
    LogServer {
        #[arg(long, default_value = "127.0.0.1:6131")]
        bind: String,
        #[command(flatten)]
        job: JobArgs,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Serves a sink store to TaskManagers, for jobs run with `--param sink=collect` (or
    /// `collect-transactional`) and `--param sink-store=rill://HOST:PORT`; prints what it holds
    /// every few seconds. Records are kept in memory, and with `--journal` in a file too.
    SinkStore {
        #[arg(long, default_value = "127.0.0.1:6132")]
        bind: String,
        /// Append every write applied to this file, and replay it when starting: a restarted
        /// store keeps what it held (`rill::connectors::sink_journal` decodes the file, which
        /// is how a harness running real processes learns what the sinks wrote).
        #[arg(long, value_name = "PATH")]
        journal: Option<std::path::PathBuf>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Runs a TaskManager that registers with a JobManager.
    Taskmanager {
        #[arg(long)]
        jobmanager: String,
        #[arg(long)]
        slots: Option<u32>,
        /// Name shown in logs and summaries (default tm-<pid>).
        #[arg(long)]
        name: Option<String>,
        /// Address of this TaskManager's data server (port 0 picks one).
        #[arg(long, default_value = "127.0.0.1:0")]
        data_bind: String,
        /// Append the accounted memory to this file every 100 ms (`UNIX_NANOS TOTAL TASKS`).
        #[arg(long, value_name = "PATH")]
        memory_samples: Option<std::path::PathBuf>,
        /// Read the processing clock's offset (milliseconds, signed) from this file every
        /// 100 ms: how an operator or a harness skews a TaskManager's clock.
        #[arg(long, value_name = "PATH")]
        clock_control: Option<std::path::PathBuf>,
        #[command(flatten)]
        events: EventsArgs,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Submits a job to a JobManager and follows it to the end.
    Run {
        #[command(flatten)]
        job: JobArgs,
        #[arg(long)]
        jobmanager: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// keyed-count through an in-process cluster; prints records/s and peak memory.
    Bench {
        #[arg(long, default_value_t = 20_000_000)]
        records: u64,
        #[arg(long, default_value_t = 2)]
        parallelism: u32,
        /// TaskManagers the subtasks are spread over (`tasks` balance): with more than one,
        /// records cross the data plane's TCP connections.
        #[arg(long, default_value_t = 1)]
        taskmanagers: u32,
        /// Every connection over TLS (certificates made for the run): what encryption costs.
        #[cfg(not(madsim))]
        #[arg(long)]
        tls: bool,
    },
    /// Task-count range and memory per TaskManager under each load-balance mode, for the WeChat
    /// shape and a corpus of generated shapes (the memory model at its back-pressure bound).
    BenchBalance {
        /// Generated shapes in the corpus.
        #[arg(long, default_value_t = 50)]
        shapes: u32,
    },
    /// Generates a cluster CA and a certificate per node under DIR (`ca.pem`, `ca.key`,
    /// `jobmanager.pem/.key`, `client`, `log-server`, `sink-store`, `checkpoint-store`, and one
    /// per `--taskmanager NAME`), for `-c security.ssl.internal.{enabled,cert,key,ca}`.
    #[cfg(not(madsim))]
    Certs {
        #[arg(long)]
        dir: std::path::PathBuf,
        /// A TaskManager's name (repeatable): its certificate binds that name.
        #[arg(long = "taskmanager", value_name = "NAME")]
        taskmanagers: Vec<String>,
    },
    /// Lists the configuration keys with their defaults.
    Config,
    /// Lists the jobs of this binary's registry.
    Jobs,
}

/// Parses the process's arguments and runs the command over `jobs`.
pub async fn main(jobs: JobRegistry) -> ExitCode {
    init_logging();
    match run(Cli::parse().command, &jobs).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Logs to stderr, filtered by `RILL_LOG`, unless the binary installed a subscriber of its own.
fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("RILL_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

async fn run(command: Command, jobs: &JobRegistry) -> Res<ExitCode> {
    match command {
        Command::Local {
            job,
            taskmanagers,
            slots,
            config,
        } => {
            let config = configuration(&config)?
                .with("taskmanager.numberOfTaskSlots", &slots.to_string())?;
            let spec = job_spec(&job)?;
            let cluster = LocalCluster::start_with_jobs(taskmanagers, config, jobs.clone()).await?;
            let report = cluster
                .run_job(&spec, print_accepted, print_progress)
                .await?;
            print_summary(&report);
            Ok(exit_code(&report))
        }
        Command::Jobmanager {
            bind,
            events,
            config,
        } => {
            let config = exposed(&config, &[&bind])?;
            let services = JobManagerServices {
                jobs: jobs.clone(),
                events: events.open()?,
                ..JobManagerServices::from_config(&config)?
            };
            let listener = tokio::net::TcpListener::bind(bind.as_str()).await?;
            println!("jobmanager listening on {}", listener.local_addr()?);
            crate::jobmanager::run_jobmanager_with(listener, config, services).await;
            Ok(ExitCode::SUCCESS)
        }
        Command::LogServer { bind, job, config } => {
            let config = exposed(&config, &[&bind])?;
            let topics = jobs.inputs(&job_spec(&job)?)?;
            let names: Vec<&str> = topics.iter().map(|(t, _)| t.as_str()).collect();
            let listener = tokio::net::TcpListener::bind(bind.as_str()).await?;
            println!(
                "log server listening on {}, topics: {}",
                listener.local_addr()?,
                names.join(", ")
            );
            serve_log(listener, topics.into_iter().collect(), config).await;
            Ok(ExitCode::SUCCESS)
        }
        Command::SinkStore {
            bind,
            journal,
            config: args,
        } => {
            let config = exposed(&args, &[&bind])?;
            if crate::connectors::write_grant::WriteKey::from_config(&config).is_none() {
                // Without a key the store cannot tell which job a TaskManager may write.
                match (is_loopback(&bind), args.insecure) {
                    (false, false) => return Err(format!(
                        "{bind} is not a loopback address: the sink store needs a write key shared with the JobManager (--write-key-file or {WRITE_KEY_ENV}), or --insecure"
                    )
                    .into()),
                    (false, true) => tracing::warn!(%bind, "insecure: sink store writers not bound to jobs"),
                    (true, _) => {}
                }
            }
            // The journal replayed before the port opens: no writer waits on a store still
            // reading its past.
            let store = CollectStore::new();
            let journal = match journal {
                Some(path) => {
                    let (journal, replayed) = SinkJournal::open(&path, &store)
                        .map_err(|e| format!("sink store journal {}: {e}", path.display()))?;
                    println!(
                        "sink store journal {}: {replayed} writes replayed",
                        path.display()
                    );
                    Some(journal)
                }
                None => None,
            };
            let listener = tokio::net::TcpListener::bind(bind.as_str()).await?;
            println!("sink store listening on {}", listener.local_addr()?);
            let watched = store.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    println!(
                        "sink store: {} records visible, {} staged, {} refused from replaced attempts",
                        watched.len(),
                        watched.staged(),
                        watched.fenced()
                    );
                }
            });
            serve_sink_store(listener, store, config, journal).await;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckpointStore {
            bind,
            dir,
            health_control,
            journal,
            config,
        } => {
            let config = exposed(&config, &[&bind])?;
            // Without a directory, in this process's memory (`jobmanager` storage is memory).
            let storage = dir.map_or(CheckpointStorage::JobManager, CheckpointStorage::Filesystem);
            let mut store = storage.open(&config, config.checkpoint_timeout())?;
            if let Some(path) = journal {
                let journaled = JournaledStore::open(store, &path)
                    .map_err(|e| format!("journal {}: {e}", path.display()))?;
                store = Arc::new(journaled);
            }
            if let Some(path) = health_control {
                let health = StoreHealth::default();
                // Read once before serving: a store restarted while a fault is in force must
                // not serve until the follower's first read.
                if let Ok(text) = std::fs::read_to_string(&path) {
                    health.set_from_text(&text)?;
                }
                tokio::spawn(follow_health_file(health.clone(), path));
                store = Arc::new(GatedStore::new(store, health));
            }
            let listener = tokio::net::TcpListener::bind(bind.as_str()).await?;
            println!("checkpoint store listening on {}", listener.local_addr()?);
            serve_checkpoint_store(listener, store, config).await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Taskmanager {
            jobmanager,
            slots,
            name,
            data_bind,
            memory_samples,
            clock_control,
            events,
            config,
        } => {
            let mut config = exposed(&config, &[&data_bind, &jobmanager])?;
            if let Some(slots) = slots {
                config.set("taskmanager.numberOfTaskSlots", &slots.to_string())?;
            }
            let name = name.unwrap_or_else(|| format!("tm-{}", std::process::id()));
            // Only a limit set explicitly is enforced: the default is no container's size.
            let limit = config
                .get_raw(crate::config::keys::MEMORY_PROCESS_SIZE)
                .map(|_| config.memory_process_size());
            let memory = crate::taskmanager::MemoryAccount::default();
            let clock = crate::taskmanager::ProcessingClock::default();
            if let Some(path) = clock_control {
                tokio::spawn(crate::clock::follow_control_file(clock.clone(), path));
            }
            let opts = TaskManagerOptions {
                name: name.clone(),
                jobmanager,
                data_bind,
                config,
                collect: None,
                memory: memory.clone(),
                clock,
                events: events.open()?,
                jobs: jobs.clone(),
            };
            let tm = TaskManager::start(opts).await?;
            println!("taskmanager {name} serving data on {}", tm.data_addr());
            let watch = memory_limit::watch(memory, limit, memory_samples.as_deref());
            tokio::select! {
                _ = tm.run() => Ok(ExitCode::SUCCESS),
                total = watch => {
                    eprintln!(
                        "taskmanager {name}: accounted memory {total} bytes passed taskmanager.memory.process.size ({} bytes): killed, as the OOM killer would",
                        limit.unwrap_or_default()
                    );
                    std::process::exit(memory_limit::OOM_EXIT_STATUS)
                }
            }
        }
        Command::Run {
            job,
            jobmanager,
            config,
        } => {
            let config = exposed(&config, &[&jobmanager])?;
            let report = submit_job(
                &jobmanager,
                &job_spec(&job)?,
                &config,
                print_accepted,
                print_progress,
            )
            .await?;
            print_summary(&report);
            Ok(exit_code(&report))
        }
        Command::Bench {
            records,
            parallelism,
            taskmanagers,
            #[cfg(not(madsim))]
            tls,
        } => {
            #[cfg(madsim)]
            let tls = false;
            bench(records, parallelism, taskmanagers.max(1), tls).await
        }
        Command::BenchBalance { shapes } => {
            bench_balance(shapes);
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(not(madsim))]
        Command::Certs { dir, taskmanagers } => {
            use crate::rpc::tls::{cluster_nodes, issue, write_issued};
            let nodes = cluster_nodes(taskmanagers);
            let mut written = write_issued(&issue(&nodes)?, &dir)?;
            written.push(write_write_key(&dir)?);
            for path in written {
                println!("wrote {}", path.display());
            }
            println!(
                "run each node with -c security.ssl.internal.enabled=true -c security.ssl.internal.ca={0}/ca.pem -c security.ssl.internal.cert={0}/NODE.pem -c security.ssl.internal.key={0}/NODE.key (keep ca.key off the nodes), and the JobManager and the sink store with --write-key-file {0}/sink-write.key (no other node)",
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Config => {
            for (key, default, description) in known_keys() {
                println!("{key:<55} {default:<12} {description}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Jobs => {
            for job in jobs.jobs() {
                println!("{:<12} {}", job.name, job.description);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The configuration `-c` gives, the secret from its file or the environment, checked: the
/// TLS files must load.
fn configuration(args: &ConfigArgs) -> Res<Configuration> {
    let mut config = Configuration::new();
    for arg in &args.config {
        let (k, v) = Configuration::parse_pair(arg)?;
        let instead = match k.as_str() {
            crate::config::keys::CLUSTER_SECRET => {
                Some(format!("--secret-file PATH or {SECRET_ENV}"))
            }
            crate::config::keys::SINK_WRITE_KEY => {
                Some(format!("--write-key-file PATH or {WRITE_KEY_ENV}"))
            }
            _ => None,
        };
        if let Some(instead) = instead {
            return Err(format!(
                "{k} cannot be given on the command line, where `ps` shows it: use {instead}"
            )
            .into());
        }
        config.set(&k, &v)?;
    }
    if let Some(secret) = from_file_or_env(args.secret_file.as_deref(), SECRET_ENV, "secret")? {
        config.set(crate::config::keys::CLUSTER_SECRET, &secret)?;
    }
    let write_key = args.write_key_file.as_deref();
    if let Some(key) = from_file_or_env(write_key, WRITE_KEY_ENV, "write key")? {
        // Every TaskManager sees grants made with the key: a short one could be guessed
        // offline from them.
        if key.chars().count() < MIN_WRITE_KEY_CHARS {
            return Err(format!(
                "the sink-store write key has {} characters: it needs at least \
                 {MIN_WRITE_KEY_CHARS} (`rill certs` writes 64 random hex digits)",
                key.chars().count()
            )
            .into());
        }
        config.set(crate::config::keys::SINK_WRITE_KEY, &key)?;
    }
    config.validate()?;
    if let Some(problem) = crate::rpc::Tls::from_config(&config).problem() {
        return Err(problem.to_owned().into());
    }
    Ok(config)
}

/// Writes a fresh sink-store write key (32 random bytes, hex) to `dir/sink-write.key`,
/// readable by its owner only (created so, never readable by others for a moment).
#[cfg(not(madsim))]
fn write_write_key(dir: &std::path::Path) -> Res<std::path::PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let hex = crate::util::fresh_key_hex();
    let path = dir.join("sink-write.key");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    // An existing file keeps its mode through `open`: narrow it before writing the key.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all((hex + "\n").as_bytes())?;
    Ok(path)
}

/// A secret from `file` if one is given, else from the environment variable `env`.
fn from_file_or_env(file: Option<&std::path::Path>, env: &str, what: &str) -> Res<Option<String>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{what} file {}: {e}", path.display()))?;
        return Ok(Some(text.trim().to_owned()));
    }
    Ok(std::env::var(env).ok().filter(|s| !s.trim().is_empty()))
}

/// [`configuration`] for a process that serves or dials `addrs`: beyond loopback it needs TLS
/// and a secret of its own, unless `--insecure` says otherwise.
fn exposed(args: &ConfigArgs, addrs: &[&str]) -> Res<Configuration> {
    let config = configuration(args)?;
    let beyond: Vec<&str> = addrs.iter().copied().filter(|a| !is_loopback(a)).collect();
    let tls = crate::rpc::Tls::from_config(&config).is_on();
    let dev_secret = config
        .get_raw(crate::config::keys::CLUSTER_SECRET)
        .is_none();
    let mut missing = Vec::new();
    if !tls {
        missing.push("TLS (security.ssl.internal.enabled=true; `rill certs` makes the files)");
    }
    if dev_secret {
        missing.push("a secret of its own (--secret-file or RILL_CLUSTER_SECRET)");
    }
    match (beyond.first(), missing.is_empty(), args.insecure) {
        (Some(addr), false, false) => Err(format!(
            "{addr} is not a loopback address: this process needs {}, or --insecure",
            missing.join(" and ")
        )
        .into()),
        (Some(addr), false, true) => {
            tracing::warn!(%addr, missing = %missing.join(", "), "insecure: serving or dialling beyond loopback without");
            Ok(config)
        }
        (None, _, _) if !tls => {
            tracing::warn!("plaintext mode (no TLS): for development on loopback only");
            Ok(config)
        }
        _ => Ok(config),
    }
}

/// Whether `addr` (HOST:PORT, or a bare host) is on loopback: `localhost`, 127.0.0.0/8, ::1.
fn is_loopback(addr: &str) -> bool {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn job_spec(args: &JobArgs) -> Res<JobSpec> {
    Ok(JobSpec::new(&args.job).with_args(args.params.iter().map(String::as_str))?)
}

fn exit_code(report: &JobStatusReport) -> ExitCode {
    if report.status == JobStatus::Finished {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_accepted(a: &Accepted) {
    println!("job {} accepted: {} subtasks", a.job, a.subtasks);
    for v in &a.vertices {
        println!("  {v}");
    }
}

fn print_progress(r: &JobStatusReport) {
    if !r.status.is_terminal() {
        println!(
            "[{:>7.1}s] {:?} records in={} out={}",
            r.elapsed_ms as f64 / 1000.0,
            r.status,
            r.records_in,
            r.records_out
        );
    }
}

fn print_summary(r: &JobStatusReport) {
    let secs = (r.elapsed_ms as f64 / 1000.0).max(0.001);
    println!("job {} {:?} after {secs:.2}s", r.job, r.status);
    println!(
        "  records in:  {} ({:.0}/s)",
        r.records_in,
        r.records_in as f64 / secs
    );
    println!("  records out: {}", r.records_out);
    if r.records_dropped > 0 {
        println!(
            "  records dropped for absent consumers: {}",
            r.records_dropped
        );
    }
    let memory: std::collections::BTreeMap<&str, u64> = r
        .memory_per_taskmanager
        .iter()
        .map(|(tm, m)| (tm.as_str(), *m))
        .collect();
    for (tm, tasks) in &r.tasks_per_taskmanager {
        let mib = memory.get(tm.as_str()).copied().unwrap_or(0) as f64 / (1 << 20) as f64;
        println!("  {tm}: {tasks} tasks, {mib:.1} MiB accounted");
    }
    if let Some(message) = &r.message {
        println!("  reason: {message}");
    }
}

/// keyed-count, parallelism `p`, on one TaskManager with `p` slots, discarding sink.
async fn bench(records: u64, p: u32, taskmanagers: u32, tls: bool) -> Res<ExitCode> {
    let started = std::time::Instant::now();
    let slots = p.div_ceil(taskmanagers).max(1);
    let config = Configuration::new()
        .with("taskmanager.numberOfTaskSlots", &slots.to_string())?
        .with("taskmanager.load-balance.mode", "tasks")?;
    let certs = std::env::temp_dir().join(format!("rill-bench-tls-{}", std::process::id()));
    #[cfg(not(madsim))]
    let config = match tls {
        true => crate::rpc::tls::embedded(&config, taskmanagers, &certs)?,
        false => config,
    };
    let cluster = LocalCluster::start(taskmanagers, config).await?;
    let spec = JobSpec::new("keyed-count")
        .with("records", records)
        .with("parallelism", p)
        .with("partitions", p)
        .with("keys", 1024)
        .with("sink", "discard");
    let job_start = std::time::Instant::now();
    let report = cluster.run_job(&spec, |_| {}, |_| {}).await?;
    let job_secs = job_start.elapsed().as_secs_f64();
    let total_secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&certs);
    println!(
        "job: keyed-count, {records} records, parallelism {p}, {taskmanagers} taskmanager(s), tls {tls}, status {:?}",
        report.status
    );
    println!("records_in: {}", report.records_in);
    println!("records_out: {}", report.records_out);
    println!("job_seconds: {job_secs:.3}");
    println!("process_seconds: {total_secs:.3}");
    println!("records_per_sec: {:.0}", records as f64 / job_secs);
    println!(
        "records_per_sec_whole_process: {:.0}",
        records as f64 / total_secs
    );
    match peak_rss_mib() {
        Some(mib) => println!("peak_rss_mib: {mib:.1}"),
        None => println!("peak_rss_mib: unavailable (no /proc/self/status)"),
    }
    cluster.shutdown();
    Ok(exit_code(&report))
}

/// The process's peak resident set (VmHWM), Linux only.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Prints, per mode, task-count range and max/mean memory per TaskManager; the max is the
/// smallest `taskmanager.memory.process.size` that runs the shape without an OOM kill.
fn bench_balance(shapes: u32) {
    use crate::config::LoadBalanceMode;
    use crate::jobmanager::balance::{evaluate, generated_shapes, wechat_shape};
    let config = Configuration::new();
    let modes = [
        LoadBalanceMode::None,
        LoadBalanceMode::Slots,
        LoadBalanceMode::Tasks,
    ];
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "{:<16} {:<6} {:>6} {:>12} {:>12}",
        "shape", "mode", "range", "max MiB", "mean MiB"
    );
    let wechat = wechat_shape();
    let mut none_max = 0;
    for mode in modes {
        if let Some(f) = evaluate(&wechat, mode, &config) {
            println!(
                "{:<16} {:<6} {:>6} {:>12.1} {:>12.1}",
                wechat.name,
                mode,
                f.task_range,
                mib(f.max_memory),
                mib(f.mean_memory)
            );
            if mode == LoadBalanceMode::None {
                none_max = f.max_memory;
            } else if mode == LoadBalanceMode::Tasks {
                println!(
                    "wechat_tasks_memory_saving_vs_none: {:.1}%",
                    100.0 * (1.0 - f.max_memory as f64 / none_max.max(1) as f64)
                );
            }
        }
    }
    let corpus = generated_shapes(shapes, 2026);
    for mode in modes {
        let figures: Vec<_> = corpus
            .iter()
            .filter_map(|s| evaluate(s, mode, &config))
            .collect();
        let n = figures.len().max(1) as f64;
        let range = figures.iter().map(|f| f.task_range as f64).sum::<f64>() / n;
        let max = figures.iter().map(|f| mib(f.max_memory)).sum::<f64>() / n;
        let mean = figures.iter().map(|f| mib(f.mean_memory)).sum::<f64>() / n;
        println!(
            "{:<16} {:<6} {:>6.2} {:>12.1} {:>12.1}   (averages over {} shapes)",
            "generated",
            mode,
            range,
            max,
            mean,
            figures.len()
        );
    }
}
