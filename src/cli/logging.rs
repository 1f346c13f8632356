//! Logs go to stderr through `tracing`, as text for people or JSON for log shippers. The
//! level comes from `--log` / `BURSTWATCH_LOG` (or `RUST_LOG`); a filter that makes no
//! sense (`debg`) is a warning and the default level, never silence.

use clap::Args;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

/// What `--log` is when nothing is set.
const DEFAULT_LEVEL: &str = "info";

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log level or filter: error, warn, info, debug, trace, or target=level pairs
    /// (`info,burstwatch=debug`) [default: info; RUST_LOG is read too].
    #[arg(
        long = "log",
        global = true,
        env = "BURSTWATCH_LOG",
        value_name = "FILTER"
    )]
    pub filter: Option<String>,
    /// Log format on stderr: `text` (for people) or `json` (one object per line).
    #[arg(
        long = "log-format",
        global = true,
        env = "BURSTWATCH_LOG_FORMAT",
        default_value = "text",
        value_parser = ["text", "json"]
    )]
    pub format: String,
}

/// Installs the subscriber; a bad filter is reported as a warning once logs work.
pub fn init(args: &LogArgs) {
    let asked = args
        .filter
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok());
    let (filter, warning) = match asked.as_deref().map(parse_filter) {
        Some(Ok(f)) => (f, None),
        Some(Err(why)) => (EnvFilter::new(DEFAULT_LEVEL), Some(why)),
        None => (EnvFilter::new(DEFAULT_LEVEL), None),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if args.format == "json" {
        builder.json().try_init()
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init()
    };
    if let Some(why) = warning {
        tracing::warn!("{why}; logging at {DEFAULT_LEVEL}");
    }
}

/// A filter, or why it is not one. Every directive must be a level, `target=level`, or a
/// target of ours (`burstwatch`, `burstwatch::live`): a bare word such as `debg` would be
/// taken as a target named "debg" and silence everything else.
fn parse_filter(spec: &str) -> Result<EnvFilter, String> {
    let bad = |d: &str| {
        format!(
            "log filter {spec:?}: {d:?} is not a level; expected error, warn, info, debug, \
             trace, off or target=level"
        )
    };
    for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        match directive.split_once('=') {
            Some((_, level)) => {
                level.parse::<LevelFilter>().map_err(|_| bad(directive))?;
            }
            None => {
                let ours = directive == "burstwatch" || directive.starts_with("burstwatch::");
                if !ours && directive.parse::<LevelFilter>().is_err() {
                    return Err(bad(directive));
                }
            }
        }
    }
    EnvFilter::try_new(spec).map_err(|e| format!("log filter {spec:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_that_make_sense_and_ones_that_do_not() {
        for good in [
            "info",
            "debug",
            "WARN",
            "info,burstwatch=debug",
            "burstwatch",
            "off",
        ] {
            assert!(parse_filter(good).is_ok(), "{good}");
        }
        for bad in ["debg", "info,verbose", "burstwatch=loud"] {
            let e = parse_filter(bad).unwrap_err();
            assert!(e.contains("expected error, warn"), "{e}");
        }
    }
}
