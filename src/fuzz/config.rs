//! Target for config parsing: the TOML file (with `${VAR}` expansion) into validated settings,
//! and the units it is written in. What validates must render (`check-config`) into a file that
//! validates again.

use proptest::prelude::*;

use super::mutate::mutated;
use super::{run, seeds};
use crate::config::units::{parse_duration, parse_size};
use crate::config::{from_str, from_str_with_env, render};

#[test]
fn config() {
    assert!(from_str(seeds::MINIMAL_CONFIG, "seed").is_ok(), "the minimal seed config validates");
    let units = prop_oneof![Just("5s"), Just("64MiB"), Just("1.5h"), Just("250ms"), Just("10000000000000000000d")];
    let input = (mutated(seeds::config_texts(), 8), units, proptest::collection::vec(any::<char>(), 0..8));
    run("config", 3_000, input, |(text, unit, junk)| {
        let text = String::from_utf8_lossy(&text);
        let env = |name: &str| (name.len() % 2 == 0).then(|| format!("${{{name}}}"));
        if let Ok(settings) = from_str_with_env(&text, "fuzz", &env) {
            let rendered = render(&settings);
            if let Err(e) = from_str(&rendered, "rendered") {
                panic!("rendered settings do not validate: {e}\n{rendered}");
            }
        }
        let unit: String = unit.chars().chain(junk).collect();
        let _ = (parse_duration(&unit), parse_size(&unit));
    });
}
