//! Targets for the protocol layer: startup packets (and the `options` they carry), framing, the
//! views of client messages and of server messages.

use std::collections::BTreeMap;

use bytes::BytesMut;
use proptest::prelude::*;

use super::mutate::{framed, mutated, wire};
use super::{run, seeds};
use crate::protocol::frame::{self, split_frame, whole_messages};
use crate::protocol::startup::{self, StartupPacket, MAX_STARTUP_LEN};
use crate::protocol::{from_client, from_server};
use crate::server::{BackendKey, ServerConn};
use crate::session::misroute::judge;
use crate::session::params::ClientParams;
use crate::session::request::Summary;
use crate::stream::Stream;

/// Message size limits worth crossing: tiny, the auth limit, the default order, none.
fn max_message() -> impl Strategy<Value = usize> {
    prop_oneof![Just(16usize), Just(8 * 1024), Just(64 << 20), Just(usize::MAX), 5..4096usize]
}

/// The untagged first packet as the handshake reads it: a length prefix checked first, then the
/// body parsed; a StartupMessage's `options` are then parsed as the session does at login.
#[test]
fn startup_packet() {
    let seeds = seeds::startup_packets();
    let input = prop_oneof![4 => mutated(seeds, 6), 1 => proptest::collection::vec(any::<u8>(), 0..64)];
    run("startup_packet", 20_000, input, |bytes| {
        let Some(prefix) = bytes.get(..4) else { return };
        let Ok(body_len) = startup::body_len(prefix.try_into().expect("four bytes")) else { return };
        assert!((4..=MAX_STARTUP_LEN - 4).contains(&body_len));
        let body = &bytes[4..bytes.len().min(4 + body_len)];
        if let Ok(StartupPacket::Startup(message)) = startup::parse(body) {
            for (name, value) in &message.params {
                assert!(!name.is_empty() && !name.contains('\0') && !value.contains('\0'), "{name:?}={value:?}");
            }
            let _ = ClientParams::requested(&message);
        }
    });
}

/// Framing: `split_frame` one message at a time, `scan` and `split_batch` over the same bytes, and
/// the lenient iterators over what they framed. Frames must be exactly the bytes they came from.
#[test]
fn frame_split() {
    let input = (wire(seeds::client_streams()), max_message(), any::<u8>());
    run("frame_split", 20_000, input, |(bytes, max, stop_at)| {
        let mut buf = BytesMut::from(&bytes[..]);
        let mut framed_len = 0;
        while let Ok(Some(frame)) = split_frame(&mut buf, max) {
            let declared = u32::from_be_bytes([frame.bytes[1], frame.bytes[2], frame.bytes[3], frame.bytes[4]]);
            assert_eq!(frame.bytes.len(), declared as usize + 1);
            assert!(declared as usize <= max && declared >= 4);
            assert_eq!(&bytes[framed_len..framed_len + frame.bytes.len()], &frame.bytes[..]);
            assert_eq!(frame.body().len(), frame.bytes.len() - 5);
            framed_len += frame.bytes.len();
        }
        assert_eq!(&buf[..], &bytes[framed_len..], "split_frame keeps what it did not frame");

        let mut seen = 0;
        if let Ok(scan) = frame::scan(&bytes, max, |tag, whole| {
            seen += 1;
            assert_eq!(tag, whole[0]);
            tag != stop_at
        }) {
            assert!(scan.len <= framed_len && scan.count == seen);
            assert_eq!(frame::tags(&bytes[..scan.len]).chars().count(), scan.count);
            assert_eq!(whole_messages(&bytes[..scan.len]).map(<[u8]>::len).sum::<usize>(), scan.len);
        }
        let mut buf = BytesMut::from(&bytes[..]);
        if let Ok((Some(batch), scan)) = frame::split_batch(&mut buf, max, |tag, _| tag != stop_at) {
            assert_eq!((batch.len(), batch.len() + buf.len()), (scan.len, bytes.len()));
        }
        let lenient: usize = whole_messages(&bytes).map(<[u8]>::len).sum();
        assert!(lenient <= bytes.len());
    });
}

/// The views of client messages, on every message a client may send, framed or not.
#[test]
fn client_messages() {
    let input = prop_oneof![3 => wire(seeds::client_streams()), 1 => framed()];
    run("client_messages", 20_000, input, |bytes| {
        for (tag, body) in frame::messages(&bytes) {
            let _ = (from_client::may_send(tag), from_client::ends_request(tag), from_client::opens_pipeline(tag));
            if let Some(sql) = from_client::query_text(body) {
                assert_eq!(sql.len() + 1, body.len());
            }
            assert!(from_client::query_sql(body).len() <= body.len());
            if let Some((name, sql)) = from_client::parse_message(body) {
                assert!(!name.contains(&0) && !sql.contains(&0));
            }
            let _ = (from_client::bind_statement(body), from_client::target(body));
            if let Some((mechanism, data)) = from_client::sasl_initial_response(body) {
                assert!(mechanism.len() + data.len() < body.len());
            }
        }
    });
}

/// Server output: the views of single messages, then a connection that sent a client's request
/// reading the bytes back (`take_batch`) and the misroute guard judging each piece.
#[test]
fn server_messages() {
    let requests = seeds::logged_in_streams();
    let input = (wire(seeds::server_streams()), 0..requests.len());
    run("server_messages", 10_000, input, |(bytes, request)| {
        for (tag, body) in frame::messages(&bytes) {
            let _ = (from_server::ready_status(body), from_server::parameter_status(body));
            let _ = (from_server::is_async(tag), from_server::starts_copy(tag));
            for field in [b'C', b'M', b'S', b'H', 0] {
                if let Some(value) = from_server::error_field(body, field) {
                    assert!(!value.contains(&0));
                }
            }
        }
        let mut server = ServerConn::new(Stream::Detached, "fuzz".into(), BackendKey::default(), BTreeMap::new());
        let request = &requests[request];
        let mut summary = Summary::default();
        frame::messages(request).for_each(|(tag, _)| summary.note(tag));
        server.send_for_bench(request, summary.pipeline);
        server.feed_for_bench(&bytes);
        // Each piece takes at least one message or one owed answer; more means a loop.
        for _ in 0..bytes.len() + request.len() + 1 {
            match server.take_batch() {
                Ok(Some((piece, _))) => {
                    let _ = judge(&piece);
                }
                Ok(None) | Err(_) => break,
            }
        }
    });
}
