//! Protection plans from the config file: `config check` (`--connect`: the
//! doctor), `run PLAN`, `drill PLAN`.

use crate::commands::doctor::{self, ConnectArgs};
use crate::output::plural;
use crate::Exit;
use crate::{Cli, Coded};
use anyhow::{anyhow, Result};
use ironvault_agent::config::{self, Config};
use ironvault_agent::duration::human;
use ironvault_agent::history::{History, Outcome};
use ironvault_agent::plan_lock::PlanLock;
use ironvault_agent::runner::{Report, RunReport, Runner};
use std::path::PathBuf;
use std::time::Duration;

/// The config file: --config, IRONVAULT_CONFIG, or /etc/ironvault/ironvault.toml.
pub fn config_path(cli: &Cli) -> PathBuf {
    cli.config
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH))
}

/// Load and check the config; a broken one is an error naming file and line.
pub fn load(cli: &Cli) -> Result<Config> {
    let cfg = config::load(&config_path(cli)).map_err(|e| {
        anyhow::Error::new(Coded {
            code: Exit::Failure,
            msg: if e.0.len() == 1 {
                e.to_string()
            } else {
                format!("{} problems in the config:\n{e}", e.0.len())
            },
        })
    })?;
    if !cli.quiet {
        for w in &cfg.warnings {
            eprintln!("warning: {w}");
        }
    }
    Ok(cfg)
}

#[derive(clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    cmd: ConfigCmd,
}

#[derive(clap::Subcommand)]
enum ConfigCmd {
    /// Check the config file: syntax, keys, schedules, repositories, password
    /// files; with --connect also open every repository (the same as 'ironvault doctor').
    Check {
        /// Also open every repository with its password, read-only, and report
        /// what stops it: password, missing repository, unreachable storage,
        /// permissions, free space, clock skew.
        #[arg(long)]
        connect: bool,
        #[command(flatten)]
        connect_args: crate::commands::doctor::ConnectArgs,
    },
}

pub fn config_cmd(cli: &Cli, a: &ConfigArgs) -> Result<Exit> {
    match a.cmd {
        ConfigCmd::Check {
            connect,
            connect_args,
        } => check_config(cli, connect.then_some(connect_args)),
    }
}

/// `config check` (and with `connect`, `doctor`): the file, then each repository.
pub fn check_config(cli: &Cli, connect: Option<ConnectArgs>) -> Result<Exit> {
    let problems = |v: &[config::ConfigError]| {
        v.iter()
            .map(|e| serde_json::json!({"line": e.line, "message": e.msg}))
            .collect::<Vec<_>>()
    };
    if cli.json {
        // A script gets JSON either way: the problems, or what is there.
        let file = config_path(cli);
        match config::load(&file) {
            Err(e) => {
                println!(
                    "{}",
                    serde_json::json!({"file": file, "ok": false, "errors": problems(&e.0)})
                );
                return Err(anyhow::Error::new(Coded {
                    code: Exit::Failure,
                    msg: format!("{} in the config", plural(e.0.len() as u64, "problem")),
                }));
            }
            Ok(cfg) => {
                let mut doc = serde_json::json!({"file": cfg.file, "ok": true,
                    "warnings": problems(&cfg.warnings),
                    "repositories": cfg.repositories.keys().collect::<Vec<_>>(),
                    "plans": cfg.plans.keys().collect::<Vec<_>>()});
                let mut found = 0;
                if let Some(a) = connect {
                    let probed = doctor::probe_all(&cfg, a)?;
                    found = doctor::count(&probed);
                    let file = cfg.file.display().to_string();
                    doc["ok"] = (found == 0).into();
                    doc["connect"] = probed
                        .iter()
                        .map(|p| {
                            serde_json::json!({"repository": p.name, "url": p.url,
                                "ok": p.problems.is_empty(), "opened": p.ok,
                                "problems": p.problems.iter().map(|x| x.replace("THE_CONFIG", &file)).collect::<Vec<_>>()})
                        })
                        .collect::<Vec<_>>()
                        .into();
                }
                println!("{doc}");
                if found > 0 {
                    return Err(anyhow::Error::new(Coded {
                        code: Exit::Failure,
                        msg: doctor::failed_line(found),
                    }));
                }
            }
        }
        return Ok(Exit::Ok);
    }
    let cfg = load(cli)?;
    if cli.quiet {
        // Checking is what was asked for: warnings are part of the answer.
        for w in &cfg.warnings {
            eprintln!("warning: {w}");
        }
    } else {
        println!(
            "{}: ok ({}, {})",
            cfg.file.display(),
            plural(cfg.repositories.len() as u64, "repository")
                .replace("repositorys", "repositories"),
            plural(cfg.plans.len() as u64, "plan")
        );
        for p in cfg.plans.values() {
            let when = p
                .schedule
                .as_ref()
                .map(|s| format!("runs at \"{}\"", s.text()))
                .unwrap_or_else(|| "runs only by hand (no schedule)".into());
            println!("  plan {}: {when}, copies {}", p.name, p.copies.join(" → "));
        }
    }
    if let Some(a) = connect {
        let probed = doctor::probe_all(&cfg, a)?;
        doctor::print(&probed, &cfg.file);
        let found = doctor::count(&probed);
        if found > 0 {
            return Err(anyhow::Error::new(Coded {
                code: Exit::Failure,
                msg: doctor::failed_line(found),
            }));
        }
    }
    Ok(Exit::Ok)
}

/// The history and the plan's lock, or a clear error if the plan is running.
pub fn open_for_plan(cfg: &Config, plan: &str) -> Result<(History, PlanLock)> {
    let lock = PlanLock::try_acquire(&cfg.state_dir, plan)?.ok_or_else(|| {
        anyhow::Error::new(Coded {
            code: Exit::Locked,
            msg: format!(
                "plan {plan} is running already (the agent or another 'ironvault run' or 'drill'); wait for it to finish"
            ),
        })
    })?;
    let history = History::open(&cfg.history_path())?;
    history.abandon_unfinished(plan)?;
    Ok((history, lock))
}

fn exe() -> Result<PathBuf> {
    std::env::current_exe().map_err(|e| anyhow!("cannot find the ironvault binary: {e}"))
}

/// With `--json`, the report is the JSON document and the log says everything.
fn report_after(cli: &Cli) -> Report {
    if cli.json {
        Report::None
    } else {
        Report::Follows
    }
}

/// Print a run's steps, a line each, and return the exit code for it.
fn report(cli: &Cli, rep: &RunReport, rto: Option<Duration>) -> Exit {
    if cli.json {
        let steps: Vec<serde_json::Value> = rep
            .steps
            .iter()
            .map(|s| {
                serde_json::json!({"step": s.step, "copy": s.copy, "result": s.outcome.as_str(),
                    "bytes": s.end.bytes, "snapshot": s.end.snapshot, "seconds": s.end.seconds,
                    "error": s.end.error})
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"run": rep.run, "plan": rep.plan, "result": rep.outcome.as_str(),
                "error": rep.error, "advice": rep.advice, "steps": steps,
                "rto_seconds": rto.map(|d| d.as_secs())})
        );
    } else if !cli.quiet {
        for s in &rep.steps {
            let on = s
                .copy
                .as_deref()
                .map(|c| format!(" {c}"))
                .unwrap_or_default();
            println!(
                "  {:<9}{on}: {}",
                s.step,
                s.end.describe(s.step.as_str(), s.outcome)
            );
            if let Some(e) = &s.end.error {
                println!("             {e}");
            }
        }
    }
    match rep.outcome {
        Outcome::Success => Exit::Ok,
        Outcome::Warning => Exit::Partial,
        Outcome::Abandoned => Exit::Interrupted,
        _ => Exit::Failure,
    }
}

/// A run's advice under its error line: once, each line indented.
fn print_advice(advice: &[String]) {
    for a in advice {
        for l in a.lines() {
            eprintln!("  {l}");
        }
    }
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// The plan to run (a [plan.NAME] of the config).
    plan: String,
}

/// `ironvault run PLAN`: backup, copies, retention, now, in the foreground.
pub fn run(cli: &Cli, a: &RunArgs) -> Result<Exit> {
    let cfg = load(cli)?;
    let plan = cfg.plan(&a.plan).map_err(|m| Coded {
        code: Exit::Failure,
        msg: m,
    })?;
    let (history, _lock) = open_for_plan(&cfg, &plan.name)?;
    let quiet = cli.quiet || cli.json;
    let log = move |l: &str| {
        if !quiet {
            eprintln!("{l}");
        }
    };
    let stop = ironvault_core::interrupt::requested;
    let runner = Runner::new(&cfg, exe()?, &history, &stop, &log, report_after(cli));
    let rep = runner.run_plan(plan, "manual", None)?;
    if !cli.json && !cli.quiet {
        println!(
            "plan {}: {} (run {})",
            plan.name,
            rep.outcome.as_str(),
            rep.run
        );
    }
    let code = report(cli, &rep, None);
    if let Some(e) = &rep.error {
        if !cli.json {
            eprintln!("error: plan {}: {e}", plan.name);
            print_advice(&rep.advice);
        }
    }
    Ok(code)
}

#[derive(clap::Args)]
pub struct DrillArgs {
    /// The plan whose copy to drill.
    plan: String,
    /// The copy (repository) to restore from [default: the plan's drill.copy, else its last copy].
    #[arg(long, value_name = "NAME")]
    copy: Option<String>,
}

/// `ironvault drill PLAN`: restore the newest snapshot into a sandbox, verify
/// it, and measure the RTA against the RTO.
pub fn drill(cli: &Cli, a: &DrillArgs) -> Result<Exit> {
    let cfg = load(cli)?;
    let plan = cfg.plan(&a.plan).map_err(|m| Coded {
        code: Exit::Failure,
        msg: m,
    })?;
    let copy = match &a.copy {
        Some(c) if !plan.copies.contains(c) => {
            return Err(Coded {
                code: Exit::Failure,
                msg: format!(
                    "plan {} has no copy {c:?}; its copies: {}",
                    plan.name,
                    plan.copies.join(", ")
                ),
            }
            .into())
        }
        Some(c) => c.clone(),
        None => plan
            .drill
            .as_ref()
            .map(|d| d.copy.clone())
            .unwrap_or_else(|| plan.copies.last().cloned().unwrap_or_default()),
    };
    let (history, _lock) = open_for_plan(&cfg, &plan.name)?;
    let quiet = cli.quiet || cli.json;
    let log = move |l: &str| {
        if !quiet {
            eprintln!("{l}");
        }
    };
    let stop = ironvault_core::interrupt::requested;
    let runner = Runner::new(&cfg, exe()?, &history, &stop, &log, report_after(cli));
    let rep = runner.drill(plan, &copy, "manual", None)?;
    let code = report(cli, &rep, plan.rto);
    let step = rep.steps.last();
    let rta = step
        .and_then(|s| s.end.seconds)
        .map(Duration::from_secs_f64);
    if rep.outcome != Outcome::Success {
        if !cli.json {
            eprintln!(
                "error: drill of plan {} from {copy} FAILED: {}",
                plan.name,
                rep.error.as_deref().unwrap_or("see above")
            );
            print_advice(&rep.advice);
        }
        // Not a success, so never exit 0.
        return Ok(if code == Exit::Ok {
            Exit::Failure
        } else {
            code
        });
    }
    let rta = rta.unwrap_or_default();
    let missed = plan.rto.is_some_and(|rto| rta > rto);
    if !cli.json && !cli.quiet {
        let objective = match plan.rto {
            None => "no RTO set for this plan".to_string(),
            Some(rto) if missed => format!("RTO {} MISSED", human(rto)),
            Some(rto) => format!("RTO {} met", human(rto)),
        };
        println!(
            "drill of plan {} from {copy}: snapshot {} restored and verified (every byte and metadata) in {} = RTA; {objective}",
            plan.name,
            step.and_then(|s| s.end.snapshot.as_deref()).map(|s| &s[..s.len().min(8)]).unwrap_or("?"),
            seconds(rta.as_secs_f64())
        );
    }
    Ok(if missed {
        Exit::OBJECTIVE_MISSED
    } else {
        Exit::Ok
    })
}

/// Seconds with the precision that matters: "0.04 s", "2.3 s", "15 min".
pub fn seconds(t: f64) -> String {
    ironvault_agent::duration::human_secs(t)
}

#[derive(clap::Args)]
pub struct AgentArgs {}

/// `ironvault agent`: run the scheduled plans until SIGTERM/SIGINT.
pub fn agent(cli: &Cli, _a: &AgentArgs) -> Result<Exit> {
    let cfg = load(cli)?;
    let quiet = cli.quiet;
    let log = move |l: &str| {
        if !quiet || l.contains("fail") || l.contains("alert") {
            eprintln!("{} {l}", chrono::Local::now().format("%Y-%m-%d %H:%M:%S"));
        }
    };
    let stop = ironvault_core::interrupt::requested;
    let agent = ironvault_agent::agent::Agent::new(&cfg, exe()?, &stop, &log);
    agent.run()?;
    Ok(Exit::Ok)
}
