//! Log output for the binary: text or JSON, level from `RUST_LOG` (default `info`), and a
//! handle to change the filter while running (SIGHUP).

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Changes the log filter of the running process.
pub struct Reload(reload::Handle<EnvFilter, Registry>);

#[derive(Debug, thiserror::Error)]
#[error("log filter {filter:?}: {reason}")]
pub struct ReloadError {
    filter: String,
    reason: String,
}

impl Reload {
    pub fn set(&self, filter: &str) -> Result<(), ReloadError> {
        let bad = |reason: String| ReloadError {
            filter: filter.to_string(),
            reason,
        };
        let f = EnvFilter::try_new(filter).map_err(|e| bad(e.to_string()))?;
        self.0.reload(f).map_err(|e| bad(e.to_string()))
    }
}

pub fn init(format: LogFormat) -> Reload {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry.with(fmt).init(),
        LogFormat::Json => registry.with(fmt.json()).init(),
    }
    Reload(handle)
}
