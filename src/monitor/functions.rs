//! User functions the classifier must treat as writes: every VOLATILE function or procedure in
//! pg_proc outside the system schemas and outside extensions (an extension's volatile functions,
//! such as uuid_generate_v4, are listed by hand when they write).

use std::collections::HashSet;
use std::time::Duration;

use super::probe::{client_config, ProbeLogin};

const VOLATILE_SQL: &str = "SELECT n.nspname::text, p.proname::text \
     FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
     WHERE p.provolatile = 'v' AND p.prokind IN ('f', 'p') \
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' \
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
                       WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')";

/// Reads the volatile user functions of the database at `addr`, as `name` and `schema.name`.
pub async fn volatile_functions(addr: &str, login: &ProbeLogin, timeout: Duration) -> Result<HashSet<String>, String> {
    let (config, tls) = client_config(addr, login, timeout).ok_or("bad address")?;
    let work = async {
        let (client, connection) = config.connect(tls).await.map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let rows = client.query(VOLATILE_SQL, &[]).await.map_err(|e| e.to_string())?;
        let mut names = HashSet::new();
        for row in rows {
            let (schema, name): (String, String) = (row.get(0), row.get(1));
            names.insert(format!("{}.{}", schema.to_lowercase(), name.to_lowercase()));
            names.insert(name.to_lowercase());
        }
        Ok(names)
    };
    tokio::time::timeout(timeout * 2, work).await.map_err(|_| "timed out".to_string())?
}
