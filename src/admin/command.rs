//! The console's commands, parsed from one simple-query text. Pure.

/// What the console can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Show {
    Pools,
    Servers,
    Clients,
    Stats,
    Replicas,
    Standbys,
    Rules,
    Config,
    Databases,
    Lists,
    Version,
    Help,
}

/// One console command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Show(Show),
    Reload,
    /// Hold new transactions (of one database, or all) once the running ones end.
    Pause(Option<String>),
    Resume(Option<String>),
    Shutdown,
    /// An empty query: answered with EmptyQueryResponse.
    Empty,
}

/// The list shown with a bad command.
pub const COMMANDS: &str = "SHOW POOLS | SERVERS | CLIENTS | STATS | REPLICAS | STANDBYS | RULES | CONFIG | \
     DATABASES | LISTS | VERSION | HELP; RELOAD; PAUSE [db]; RESUME [db]; SHUTDOWN";

/// Every command with what it does, for SHOW HELP.
pub const HELP: &[(&str, &str)] = &[
    ("SHOW POOLS", "server pools: clients active and waiting, server connections by state, size, mode"),
    ("SHOW SERVERS", "every open server connection: pool, state, process id, TLS"),
    ("SHOW CLIENTS", "every connected client: state, address, linked node, application_name"),
    ("SHOW STATS", "per pool totals: transactions, queries, bytes, query and wait times"),
    ("SHOW REPLICAS", "each node's role, state, lag in bytes and seconds, LSNs"),
    ("SHOW STANDBYS", "the primary's pg_stat_replication (details need pg_monitor for the monitor user)"),
    ("SHOW RULES", "routing rules in the order they are tried"),
    ("SHOW CONFIG", "the running configuration, secrets hidden"),
    ("SHOW DATABASES", "configured databases, their nodes, pool settings, paused or not"),
    ("SHOW LISTS", "counts as PgBouncer lists them: databases, users, pools, clients and servers"),
    ("SHOW VERSION", "pgsplit's version"),
    ("SHOW HELP", "this list"),
    ("RELOAD", "read the config file again; an invalid file changes nothing"),
    ("PAUSE [db]", "hold new transactions (of db, or all) once running ones end"),
    ("RESUME [db]", "let held transactions go on"),
    ("SHUTDOWN", "stop accepting clients and shut down once transactions end"),
];

/// Parses one command; the error is the text that was not understood.
pub fn parse(sql: &str) -> Result<Command, String> {
    let text = sql.trim().trim_end_matches(';').trim();
    let words: Vec<&str> = text.split_whitespace().collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    let name = |i: usize| words.get(i).map(|w| w.trim_matches('"').to_string());
    Ok(match lower.as_slice() {
        [] => Command::Empty,
        ["show", what] => Command::Show(show(what).ok_or_else(|| text.to_string())?),
        ["reload"] => Command::Reload,
        ["pause"] | ["pause", _] => Command::Pause(name(1)),
        ["resume"] | ["resume", _] => Command::Resume(name(1)),
        ["shutdown"] => Command::Shutdown,
        _ => return Err(text.to_string()),
    })
}

fn show(what: &str) -> Option<Show> {
    Some(match what {
        "pools" => Show::Pools,
        "servers" => Show::Servers,
        "clients" => Show::Clients,
        "stats" => Show::Stats,
        "replicas" => Show::Replicas,
        "standbys" => Show::Standbys,
        "rules" => Show::Rules,
        "config" => Show::Config,
        "databases" => Show::Databases,
        "lists" => Show::Lists,
        "version" => Show::Version,
        "help" => Show::Help,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_in_any_case() {
        assert_eq!(parse("SHOW POOLS;"), Ok(Command::Show(Show::Pools)));
        assert_eq!(parse("  show   replicas "), Ok(Command::Show(Show::Replicas)));
        assert_eq!(parse("show lists"), Ok(Command::Show(Show::Lists)));
        assert_eq!(parse("SHOW VERSION;"), Ok(Command::Show(Show::Version)));
        assert_eq!(parse("reload"), Ok(Command::Reload));
        assert_eq!(parse("PAUSE"), Ok(Command::Pause(None)));
        assert_eq!(parse("pause App"), Ok(Command::Pause(Some("App".into()))));
        assert_eq!(parse("resume \"app\""), Ok(Command::Resume(Some("app".into()))));
        assert_eq!(parse("Shutdown;"), Ok(Command::Shutdown));
        assert_eq!(parse(" ; "), Ok(Command::Empty));
    }

    #[test]
    fn bad_commands_are_errors() {
        assert_eq!(parse("SHOW ME"), Err("SHOW ME".into()));
        assert_eq!(parse("select 1"), Err("select 1".into()));
        assert_eq!(parse("pause a b"), Err("pause a b".into()));
    }
}
