//! The SQLSTATE codes pgsplit itself reports. Server errors pass through with their own codes.

pub const PROTOCOL_VIOLATION: &str = "08P01";
pub const CONNECTION_FAILURE: &str = "08006";
pub const CANNOT_CONNECT_NOW: &str = "57P03";
pub const ADMIN_SHUTDOWN: &str = "57P01";
pub const INVALID_PASSWORD: &str = "28P01";
pub const INVALID_AUTHORIZATION: &str = "28000";
pub const INVALID_CATALOG_NAME: &str = "3D000";
pub const TOO_MANY_CONNECTIONS: &str = "53300";
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
pub const SYNTAX_ERROR: &str = "42601";
pub const INVALID_NAME: &str = "42602";
pub const CONFIG_FILE_ERROR: &str = "F0000";
pub const OBJECT_IN_USE: &str = "55006";
pub const DUPLICATE_PREPARED_STATEMENT: &str = "42P05";
/// A replica refusing a write; the misroute guard looks for it.
pub const READ_ONLY_SQL_TRANSACTION: &str = "25006";
