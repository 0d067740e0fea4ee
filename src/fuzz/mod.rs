//! Fuzz targets for every entry point that reads bytes from the outside world: startup packets,
//! framing, request buffering, the client and server message views, SCRAM, the classifier's lexer
//! and parse walk, hints, and the config file. They run on stable Rust as proptest property tests:
//! inputs are captured real traffic (`seeds/`), mutated (bit flips, truncation, corrupted length
//! fields, splices), or generated from scratch; each target asserts that nothing panics and that
//! what it returns is consistent with its input.
//!
//! `cargo test` runs each target for a small, fixed number of cases with a fixed seed, so CI stays
//! fast and deterministic. `scripts/fuzz` runs them long: `PGSPLIT_FUZZ_CASES` (cases per target),
//! `PGSPLIT_FUZZ_SECONDS` (time per target, instead of cases) and `PGSPLIT_FUZZ_SEED` (another
//! sequence of inputs). Each target prints one line: its executions, the slowest case and the seed.

mod auth;
mod classify;
mod config;
mod mutate;
mod protocol;
mod seeds;
mod session;

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};

/// The seed of CI runs: the same inputs every time, so a failure there is reproducible.
const DEFAULT_SEED: u64 = 0x5eed_f022;

/// Cases per round when running for a time: long enough that the runner's set-up does not count.
const ROUND: u32 = 100_000;

/// How long one target runs.
#[derive(Clone, Copy, Debug)]
enum Budget {
    Cases(u64),
    Time(Duration),
}

/// The budget the environment asks for, else `ci_cases`.
fn budget(ci_cases: u32) -> Budget {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    match (var("PGSPLIT_FUZZ_SECONDS"), var("PGSPLIT_FUZZ_CASES")) {
        (Some(secs), _) => Budget::Time(Duration::from_secs(secs)),
        (None, Some(cases)) => Budget::Cases(cases),
        (None, None) => Budget::Cases(ci_cases.into()),
    }
}

/// Runs `test` on inputs drawn from `strategy` within the budget; panics with the smallest failing
/// input proptest could shrink to (and the seed and round that found it) when any case panics.
pub(crate) fn run<S>(name: &str, ci_cases: u32, strategy: S, test: impl Fn(S::Value))
where
    S: Strategy,
    S::Value: Debug,
{
    let budget = budget(ci_cases);
    let seed = std::env::var("PGSPLIT_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_SEED);
    let executions = AtomicU64::new(0);
    let slowest = AtomicU64::new(0);
    let started = Instant::now();
    let mut round = 0u64;
    loop {
        let cases = match budget {
            Budget::Cases(total) => {
                let left = total.saturating_sub(executions.load(Ordering::Relaxed));
                u32::try_from(left.min(u64::from(ROUND))).unwrap_or(ROUND)
            }
            Budget::Time(limit) if started.elapsed() < limit => ROUND,
            Budget::Time(_) => 0,
        };
        if cases == 0 {
            break;
        }
        let mut runner = runner(cases, seed, round);
        let outcome = runner.run(&strategy, |input| {
            let case = Instant::now();
            test(input);
            slowest.fetch_max(case.elapsed().as_micros() as u64, Ordering::Relaxed);
            executions.fetch_add(1, Ordering::Relaxed);
            Ok(())
        });
        if let Err(e) = outcome {
            let found = match e {
                TestError::Fail(why, input) => format!("{why} for input {input:?}"),
                TestError::Abort(why) => format!("aborted: {why}"),
            };
            panic!("fuzz {name}: {found} (PGSPLIT_FUZZ_SEED={seed}, round {round})");
        }
        round += 1;
    }
    eprintln!(
        "fuzz {name}: {} executions, 0 panics, slowest case {} µs, {:.1} s, seed {seed}",
        executions.load(Ordering::Relaxed),
        slowest.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}

/// A runner for one round: its own deterministic random sequence, no files written on failure.
fn runner(cases: u32, seed: u64, round: u64) -> TestRunner {
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 4096, ..Config::default() };
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&round.to_le_bytes());
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}
