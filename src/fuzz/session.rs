//! Targets for what a session does with a logged-in client's bytes: `request::take` as reads
//! arrive, and a request's path after it without sockets (inspection, DEALLOCATE, the rewrite for
//! a server connection and the replies it then owes), as `benches/request.rs` drives it.

use std::collections::{BTreeMap, HashSet};

use bytes::BytesMut;
use proptest::collection::vec;
use proptest::prelude::*;

use super::mutate::wire;
use super::{run, seeds};
use crate::classify::{Classifier, ClassifierSettings, Deallocation};
use crate::protocol::frame::{self, whole_messages};
use crate::protocol::from_client;
use crate::server::{BackendKey, ServerConn};
use crate::session::prepared::Prepared;
use crate::session::request::{self, Taken};
use crate::session::routing::RoutingState;
use crate::state::statements::StatementIds;
use crate::stream::Stream;

/// A client's bytes arriving in reads of random sizes, taken as the session takes them: whole
/// requests while no server is held, everything whole once one is. A batch must be whole
/// messages, the front of what was buffered, and its summary must count what it holds.
#[test]
fn request_take() {
    let reads = vec(1..600usize, 1..12);
    let input = (wire(seeds::logged_in_streams()), reads, any::<bool>(), prop_oneof![Just(64usize), Just(64 << 20)]);
    run("request_take", 20_000, input, |(bytes, reads, whole_request, max)| {
        let mut buf = BytesMut::new();
        let mut fed = 0;
        let mut taken = 0;
        for read in reads.iter().cycle().take(bytes.len() + reads.len()) {
            match request::take(&mut buf, max, whole_request) {
                Ok(Taken::Batch(batch)) => {
                    assert_eq!(&batch.bytes[..], &bytes[taken..taken + batch.bytes.len()]);
                    taken += batch.bytes.len();
                    let tags: Vec<u8> = frame::messages(&batch.bytes).map(|(tag, _)| tag).collect();
                    assert_eq!(whole_messages(&batch.bytes).map(<[u8]>::len).sum::<usize>(), batch.bytes.len());
                    let readies = tags.iter().filter(|&&t| from_client::expects_ready(t)).count();
                    assert_eq!(batch.summary.readies, readies);
                    assert!(tags.iter().all(|&t| from_client::may_send(t) && t != from_client::TERMINATE));
                    continue;
                }
                Ok(Taken::NeedMore) if fed < bytes.len() => {}
                Ok(_) | Err(_) => return,
            }
            let next = (fed + read).min(bytes.len());
            buf.extend_from_slice(&bytes[fed..next]);
            fed = next;
        }
    });
}

/// Requests taken from a client's bytes and run through the session's pure stages as a server
/// connection without a socket would see them: inspection (the classifier, the prepared
/// statements of earlier requests), DEALLOCATE, the rewrite, and the replies it owes.
#[test]
fn request_path() {
    let input = (wire(seeds::logged_in_streams()), any::<bool>());
    run("request_path", 5_000, input, |(bytes, reuse_unnamed)| run_requests(&bytes, reuse_unnamed));
}

/// Inputs the target once panicked on, each kept so it never does again.
#[test]
fn request_path_regressions() {
    // A Bind whose statement name has no terminator, after an unnamed statement pgsplit named:
    // the rewrite sliced past the body's end (prepared/mod.rs, `bind`).
    let message = |tag: u8, body: &[u8]| [&[tag][..], &(body.len() as u32 + 4).to_be_bytes(), body].concat();
    let parse = message(b'P', b"\0select 1\0\0\0");
    for bind in [&b"p\0"[..], b"portal\0s", b"x", b""] {
        run_requests(&[parse.clone(), message(b'B', bind), message(b'S', b"")].concat(), true);
    }
}

/// What `request_path` runs for one input.
fn run_requests(bytes: &[u8], reuse_unnamed: bool) {
    let classifier = Classifier::new(ClassifierSettings { cache_size: 64, write_functions: HashSet::new() });
    let registry = StatementIds::default();
    let mut routing = RoutingState::default();
    let mut statements = Prepared::default();
    let mut server = ServerConn::new(Stream::Detached, "fuzz".into(), BackendKey::default(), BTreeMap::new());
    let mut buf = BytesMut::from(bytes);
    while let Ok(Taken::Batch(batch)) = request::take(&mut buf, 1 << 20, true) {
        let inspection = routing.inspect(&classifier, &batch.bytes, true, &statements);
        // `Session::deallocate`: a lone Query that is DEALLOCATE forgets a protocol-level statement.
        let mut messages = frame::messages(&batch.bytes);
        if let (Some((from_client::QUERY, _)), None) = (messages.next(), messages.next()) {
            if let [class] = &inspection.statements[..] {
                if let Some(Deallocation::Name(name)) = &class.deallocates {
                    statements.forget(name.as_bytes());
                }
            }
        }
        statements.start_request();
        if statements.touches(&batch.bytes, reuse_unnamed) {
            let out = statements.rewrite(&registry, &batch.bytes, &inspection.parsed, &mut server, reuse_unnamed, &[]);
            server.send_outgoing_for_bench(out, batch.summary.pipeline);
        } else {
            server.send_for_bench(&batch.bytes, batch.summary.pipeline);
        }
    }
}
