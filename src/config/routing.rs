//! `[routing]`: how reads are spread over replicas, how stale a replica may be, and the rules.

use std::time::Duration;

use super::choices;
use super::env::invalid_at;
use super::file::{RoutingFile, RuleFile};
use super::units::{parse_duration, parse_size};
use super::ConfigError;
use crate::classify::RouteTarget;

/// What to do with a read when no replica qualifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaleFallback {
    /// Send it to the primary.
    Primary,
    /// Wait up to `wait_timeout` for a replica to qualify, then the primary.
    Wait,
    /// Refuse it with an error.
    Error,
}

impl StaleFallback {
    /// Every fallback, in the order messages list them.
    pub const ALL: [StaleFallback; 3] = [StaleFallback::Primary, StaleFallback::Wait, StaleFallback::Error];

    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            StaleFallback::Primary => "primary",
            StaleFallback::Wait => "wait",
            StaleFallback::Error => "error",
        }
    }

    /// Reads the config spelling (exactly, lowercase).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == text)
    }
}

/// How a read picks among qualifying replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Balance {
    /// The node with the fewest server connections in use, weighted; among equals, the one the
    /// session read from last.
    LeastBusy,
    /// In turn, weighted.
    RoundRobin,
    /// At random, weighted.
    Random,
}

impl Balance {
    /// Every strategy, in the order messages list them.
    pub const ALL: [Balance; 3] = [Balance::LeastBusy, Balance::RoundRobin, Balance::Random];

    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Balance::LeastBusy => "least-busy",
            Balance::RoundRobin => "round-robin",
            Balance::Random => "random",
        }
    }

    /// Reads the config spelling (exactly, lowercase).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == text)
    }
}

/// The spellings of `routing.read_your_writes`; the settings keep it as the switch
/// [`RoutingSettings::read_your_writes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadYourWrites {
    /// On: reads after the session's own writes wait for a replica past their LSN.
    Lsn,
    /// Off.
    Off,
}

impl ReadYourWrites {
    /// Every spelling, in the order messages list them.
    pub const ALL: [ReadYourWrites; 2] = [ReadYourWrites::Lsn, ReadYourWrites::Off];

    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            ReadYourWrites::Lsn => "lsn",
            ReadYourWrites::Off => "off",
        }
    }

    /// Reads the config spelling (exactly, lowercase).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == text)
    }

    /// The spelling of the switch `on`.
    pub fn of(on: bool) -> Self {
        if on {
            ReadYourWrites::Lsn
        } else {
            ReadYourWrites::Off
        }
    }
}

/// One routing rule; every matcher present must match.
#[derive(Clone, Debug)]
pub struct RuleSettings {
    pub name: String,
    pub databases: Vec<String>,
    pub users: Vec<String>,
    pub application_names: Vec<String>,
    /// Statement kinds, lowercased ("select", "insert", …).
    pub kinds: Vec<String>,
    pub tables: Vec<String>,
    pub functions: Vec<String>,
    pub regex: Option<String>,
    /// Where the rule sends what it matches.
    pub route: RouteTarget,
    pub max_lag: Option<Duration>,
}

/// Read routing and replica freshness.
#[derive(Clone, Debug)]
pub struct RoutingSettings {
    pub max_lag: Duration,
    pub max_lag_bytes: u64,
    /// Reads after the session's own writes wait for a replica that replayed them.
    pub read_your_writes: bool,
    /// Every session learns its write LSN with each commit and gets `pgsplit.write_lsn`; else
    /// only sessions that ask (`pgsplit.report_write_lsn`), or when reads wait for replicas.
    pub report_write_lsn: bool,
    pub stale_fallback: StaleFallback,
    pub wait_timeout: Duration,
    /// How long a write waits for an elected primary (a failover under way) before it fails.
    pub failover_timeout: Duration,
    pub balance: Balance,
    /// The primary takes a share of plain reads too.
    pub primary_reads: bool,
    /// How often the monitor samples every node.
    pub check_interval: Duration,
    /// Functions (besides the built-in list) whose calls make a statement a write.
    pub write_functions: Vec<String>,
    /// Who the monitor logs in as; default: the first configured user's server login.
    pub monitor_user: Option<String>,
    pub monitor_password: Option<String>,
    pub rules: Vec<RuleSettings>,
}

/// Validates `[routing]`.
pub fn validate(file: RoutingFile) -> Result<RoutingSettings, ConfigError> {
    let duration = |v: &Option<String>, default: &str, key: &str| {
        let at = format!("routing.{key}");
        parse_duration(v.as_deref().unwrap_or(default)).map_err(|e| invalid_at(&at, format!("{at}: {e}")))
    };
    let max_lag_bytes = parse_size(file.max_lag_bytes.as_deref().unwrap_or("16MiB"))
        .map_err(|e| invalid_at("routing.max_lag_bytes", format!("routing.max_lag_bytes: {e}")))?;
    let read_your_writes = match file.read_your_writes.as_deref() {
        None => ReadYourWrites::Lsn,
        Some(text) => ReadYourWrites::parse(text).ok_or_else(|| {
            let names = choices::quoted(&ReadYourWrites::ALL.map(ReadYourWrites::name));
            invalid_at("routing.read_your_writes", format!("routing.read_your_writes = {text:?}: use {names}"))
        })?,
    };
    let stale_fallback = match file.stale_fallback.as_deref() {
        None => StaleFallback::Primary,
        Some(text) => StaleFallback::parse(text).ok_or_else(|| {
            let names = choices::plain(&StaleFallback::ALL.map(StaleFallback::name));
            invalid_at("routing.stale_fallback", format!("routing.stale_fallback = {text:?}: use {names}"))
        })?,
    };
    let balance = match file.balance.as_deref() {
        None => Balance::LeastBusy,
        Some(text) => Balance::parse(text).ok_or_else(|| {
            let names = choices::plain(&Balance::ALL.map(Balance::name));
            invalid_at("routing.balance", format!("routing.balance = {text:?}: use {names}"))
        })?,
    };
    let check_interval = duration(&file.check_interval, "100ms", "check_interval")?;
    if check_interval < Duration::from_millis(10) {
        return Err(invalid_at("routing.check_interval", "routing.check_interval must be at least 10ms".into()));
    }
    let rules = file.rules.into_iter().enumerate().map(|(i, r)| validate_rule(i, r)).collect::<Result<_, _>>()?;
    Ok(RoutingSettings {
        max_lag: duration(&file.max_lag, "1s", "max_lag")?,
        max_lag_bytes,
        read_your_writes: read_your_writes == ReadYourWrites::Lsn,
        report_write_lsn: file.report_write_lsn.unwrap_or(false),
        stale_fallback,
        wait_timeout: duration(&file.wait_timeout, "200ms", "wait_timeout")?,
        failover_timeout: duration(&file.failover_timeout, "10s", "failover_timeout")?,
        balance,
        primary_reads: file.primary_reads.unwrap_or(false),
        check_interval,
        write_functions: file.write_functions.unwrap_or_default().iter().map(|f| f.to_ascii_lowercase()).collect(),
        monitor_user: file.monitor_user,
        monitor_password: file.monitor_password,
        rules,
    })
}

fn validate_rule(index: usize, rule: RuleFile) -> Result<RuleSettings, ConfigError> {
    let name = rule.name.unwrap_or_else(|| format!("rule {}", index + 1));
    // Only the lowercase spelling, as for every other config value (hints take any case).
    let Some(route) = RouteTarget::parse(&rule.route).filter(|r| r.name() == rule.route) else {
        let (route, names) = (&rule.route, choices::plain(&RouteTarget::ALL.map(RouteTarget::name)));
        let message = format!("routing.rules {name:?}: route = {route:?}: use {names}");
        return Err(invalid_at(&format!("routing.rules.{index}.route"), message));
    };
    let max_lag = rule.max_lag.as_deref().map(parse_duration).transpose().map_err(|e| {
        invalid_at(&format!("routing.rules.{index}.max_lag"), format!("routing.rules {name:?}: max_lag: {e}"))
    })?;
    let lower = |v: Option<Vec<String>>| v.unwrap_or_default().iter().map(|s| s.to_ascii_lowercase()).collect();
    Ok(RuleSettings {
        databases: rule.database.unwrap_or_default(),
        users: rule.user.unwrap_or_default(),
        application_names: rule.application_name.unwrap_or_default(),
        kinds: lower(rule.kind),
        tables: lower(rule.tables),
        functions: lower(rule.functions),
        regex: rule.regex,
        route,
        max_lag,
        name,
    })
}
