//! `[log]`: how pgsplit's log lines are written. The level stays a plain string in
//! [`Settings`](super::Settings) since `RUST_LOG` may override it anyway.

use super::choices;
use super::env::invalid_at;
use super::ConfigError;

/// How each log line is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal or journald.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// Every format, in the order messages list them.
    pub const ALL: [LogFormat; 2] = [LogFormat::Text, LogFormat::Json];

    /// The config spelling, for `check-config`.
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }

    /// Reads the config spelling (exactly, lowercase).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == text)
    }
}

/// The levels `log.level` takes, as the tracing filter spells them, in the order messages list them.
pub const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// Checks `log.level`: one of the five tracing [`LEVELS`] in any case (absent means info); a typo
/// would otherwise be ignored silently by the log filter. Returns it lowercased.
pub fn parse_level(value: Option<&str>) -> Result<String, ConfigError> {
    let level = value.unwrap_or("info").to_ascii_lowercase();
    if LEVELS.contains(&level.as_str()) {
        return Ok(level);
    }
    Err(invalid_at("log.level", format!("log.level = {level:?}: use {}", choices::quoted(&LEVELS))))
}

/// Parses `log.format`; absent means text.
pub fn parse_format(value: Option<&str>) -> Result<LogFormat, ConfigError> {
    let Some(text) = value else { return Ok(LogFormat::default()) };
    LogFormat::parse(text).ok_or_else(|| {
        let names = choices::quoted(&LogFormat::ALL.map(LogFormat::name));
        invalid_at("log.format", format!("log.format = {text:?}: use {names}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_str_with_env;

    fn load(log: &str) -> Result<crate::config::Settings, ConfigError> {
        let text =
            format!("{log}\n[[users]]\nname = \"app\"\nauth = \"trust\"\n[databases.app]\nprimary = \"h:5432\"\n");
        from_str_with_env(&text, "test", &|_| None)
    }

    #[test]
    fn level_is_one_of_the_five() {
        assert_eq!(load("").unwrap().log_level, "info");
        assert_eq!(load("[log]\nlevel = \"DEBUG\"").unwrap().log_level, "debug");
        let err = load("[log]\nlevel = \"verbose\"").unwrap_err().to_string();
        assert!(err.contains("log.level") && err.contains("verbose"), "{err}");
    }

    #[test]
    fn format_defaults_to_text() {
        assert_eq!(load("").unwrap().log_format, LogFormat::Text);
        assert_eq!(load("[log]\nlevel = \"debug\"").unwrap().log_format, LogFormat::Text);
    }

    #[test]
    fn format_accepts_text_and_json() {
        assert_eq!(load("[log]\nformat = \"text\"").unwrap().log_format, LogFormat::Text);
        assert_eq!(load("[log]\nformat = \"json\"").unwrap().log_format, LogFormat::Json);
    }

    #[test]
    fn bad_format_names_the_key_and_the_choices() {
        let err = load("[log]\nformat = \"yaml\"").unwrap_err().to_string();
        assert!(err.contains("log.format") && err.contains("yaml") && err.contains("\"json\""), "{err}");
    }

    #[test]
    fn check_config_shows_the_format() {
        let rendered = crate::config::render(&load("[log]\nformat = \"json\"").unwrap());
        assert!(rendered.contains("[log]\nlevel = \"info\"\nformat = \"json\"\n"), "{rendered}");
        let rendered = crate::config::render(&load("").unwrap());
        assert!(rendered.contains("format = \"text\""), "{rendered}");
    }
}
