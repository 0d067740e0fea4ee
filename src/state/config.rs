//! Live reload: SIGHUP and the console's RELOAD read the config file again. A valid file takes
//! effect without dropping a client: new logins see the new users, every session picks up the
//! new rules and pools at its next transaction, pool sizes change in place, pools no longer
//! configured drain, and the monitor restarts only if what it watches changed. An invalid file
//! is rejected whole and the running configuration stays.

use std::collections::HashSet;
use std::sync::Arc;

use super::{classifier, AppError, Shared};
use crate::auth::lookup::Lookup;
use crate::auth::Authenticator;
use crate::classify::Classifier;
use crate::config::{self, Settings};
use crate::monitor::Monitor;
use crate::route::Policy;

/// One configuration: the settings and what is derived from them, replaced whole by a reload.
pub struct Config {
    pub settings: Settings,
    pub auth: Arc<Authenticator>,
    pub policy: Arc<Policy>,
    /// The configured write functions and those learned from the primaries. Here, so a session
    /// reads it from the snapshot it holds rather than loading a shared one per request.
    pub classifier: Arc<Classifier>,
    /// 1 at start, one more for each snapshot after it: a reload, or write functions learned.
    pub generation: u64,
}

impl Config {
    /// Derives the login secrets and compiles the rules; the classifier knows `learned` too.
    pub fn build(settings: Settings, generation: u64, learned: &HashSet<String>) -> Result<Config, AppError> {
        let auth = Authenticator::new(settings.users.values().map(|u| &**u)).map_err(AppError::Users)?;
        let lookup = settings
            .auth_lookup
            .clone()
            .map(|lookup| Lookup::new(lookup, settings.tls.server.clone(), settings.pool.connect_timeout));
        let auth = auth.with_lookup(lookup);
        let policy = Policy::new(settings.routing.clone()).map_err(AppError::Routing)?;
        let classifier = Arc::new(classifier(&settings, learned));
        Ok(Config { settings, auth: Arc::new(auth), policy: Arc::new(policy), classifier, generation })
    }

    /// The same configuration, the next snapshot, with a classifier that also knows `learned`.
    pub fn learned(&self, learned: &HashSet<String>) -> Config {
        Config {
            settings: self.settings.clone(),
            auth: self.auth.clone(),
            policy: self.policy.clone(),
            classifier: Arc::new(classifier(&self.settings, learned)),
            generation: self.generation + 1,
        }
    }
}

impl Shared {
    /// Reads the config file again and applies it; the error says why nothing changed.
    pub fn reload(&self) -> Result<(), String> {
        let ctx = self;
        // Held to the end: one snapshot is made at a time, and learned functions stay in it.
        let learned = ctx.learned_functions.lock();
        let current = ctx.config();
        let Some(path) = current.settings.source.clone() else {
            return Err("pgsplit was not started from a config file; nothing to reload".into());
        };
        let settings = config::load(&path).map_err(|e| format!("config not reloaded, the running one stays: {e}"))?;
        let fixed = restart_only(&current.settings, &settings);
        let next = Config::build(settings, current.generation + 1, &learned)
            .map_err(|e| format!("config not reloaded: {e}"))?;
        if monitor_key(&current.settings) != monitor_key(&next.settings) {
            let token = ctx.shutdown.child_token();
            let monitor = Monitor::start(&next.settings, token.clone());
            ctx.monitor.store(Arc::new(monitor));
            std::mem::replace(&mut *ctx.monitor_token.lock(), token).cancel();
            tracing::info!("monitor restarted for the new databases or limits");
        }
        ctx.pools.apply(&next.settings);
        let generation = next.generation;
        ctx.publish(next);
        drop(learned);
        match fixed.is_empty() {
            true => tracing::info!(generation, path = %path.display(), "configuration reloaded"),
            false => {
                tracing::warn!(generation, path = %path.display(), needs_restart = %fixed.join(", "), "configuration reloaded; some changes need a restart")
            }
        }
        Ok(())
    }
}

/// Settings a running pgsplit cannot change: they are bound or built at start.
fn restart_only(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if old.listen != new.listen {
        changed.push("listen.addr");
    }
    if old.workers != new.workers {
        changed.push("runtime.workers");
    }
    if old.metrics_addr != new.metrics_addr {
        changed.push("listen.metrics_addr");
    }
    if old.limits.max_clients != new.limits.max_clients {
        changed.push("limits.max_clients");
    }
    if format!("{:?}", old.tls) != format!("{:?}", new.tls) {
        changed.push("tls");
    }
    changed
}

/// What the monitor watches: a new monitor starts when this changes.
fn monitor_key(s: &Settings) -> String {
    let r = &s.routing;
    format!(
        "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
        s.databases,
        r.check_interval,
        r.max_lag,
        r.max_lag_bytes,
        r.monitor_user,
        r.monitor_password,
        s.pool.connect_timeout,
        s.users.values().map(|u| (&u.server_user, &u.server_password)).collect::<Vec<_>>(),
    )
}
