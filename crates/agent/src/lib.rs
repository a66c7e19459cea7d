//! ironvault protection plans: the config file, schedules, the run history,
//! device facts and 3-2-1 verdicts, `status`, drills, alerts and the agent.

pub mod agent;
pub mod alerts;
pub mod child;
pub mod config;
pub mod duration;
pub mod facts;
pub mod history;
pub mod http;
pub mod metrics;
pub mod plan_lock;
pub mod runner;
pub mod schedule;
pub mod status;
pub mod step;
pub mod verdict;
