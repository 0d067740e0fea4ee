//! Statements pgsplit runs itself on a server connection (ROLLBACK and DISCARD ALL at checkin,
//! the SETs that bring a connection to a client's parameters):
//! sent as a simple Query, replies swallowed, ParameterStatus still recorded.

use bytes::BytesMut;

use super::{ServerConn, MAX_SERVER_MESSAGE};
use crate::protocol::frame;
use crate::protocol::from_client::Pipeline;
use crate::protocol::{build, from_server};
use crate::server::ServerError;

impl ServerConn {
    /// Runs a statement of pgsplit's own and swallows its replies (ParameterStatus still recorded).
    pub async fn run_internal(&mut self, sql: &str) -> Result<(), ServerError> {
        debug_assert!(self.owed.is_empty(), "internal statement while replies are owed");
        let mut msg = BytesMut::new();
        build::query(&mut msg, sql);
        self.send(&msg, Pipeline::Closed, false).await?;
        let mut error: Option<(String, String)> = None;
        while !self.owed.is_empty() {
            self.read_more().await?;
            while let Some(frame) =
                frame::split_frame(&mut self.read_buf, MAX_SERVER_MESSAGE).map_err(|e| self.protocol_error(e))?
            {
                let body = frame.body();
                match frame.tag {
                    from_server::READY_FOR_QUERY => {
                        self.owed.on_reply(frame.tag);
                        self.status = from_server::ready_status(body).unwrap_or(b'E');
                    }
                    from_server::PARAMETER_STATUS => self.record_reported(body),
                    from_server::ERROR_RESPONSE if error.is_none() => {
                        let field = |f| {
                            String::from_utf8_lossy(from_server::error_field(body, f).unwrap_or_default()).into_owned()
                        };
                        error = Some((field(b'C'), field(b'M')));
                    }
                    _ => {}
                }
            }
        }
        // pgsplit's own statements are not client requests: they add nothing to latency.
        self.busy_since = None;
        match error {
            None => Ok(()),
            Some((code, message)) => Err(ServerError::Statement {
                addr: self.addr.to_string(),
                what: sql.chars().take(80).collect(),
                code,
                message,
            }),
        }
    }
}
