//! Framing hot paths: splitting server output into batches or single messages, and taking a
//! client request off its buffer.
//!
//! Run with `cargo bench --bench frame` (add `-- --warm-up-time 1 --measurement-time 2` for a
//! quick pass).

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pgsplit::protocol::frame::{split_batch, split_frame};
use pgsplit::session::request::{self, Taken};

#[path = "wire/mod.rs"]
mod wire;
use wire::put_msg;

/// The size of the read buffer the server output is placed in.
const READ_BUFFER: usize = 64 * 1024;
/// DataRow messages in the server output.
const ROWS: usize = 500;
/// The message size limit passed to the framing functions (the proxy's limit for server messages).
const MAX_MESSAGE: usize = 1 << 30;

/// A RowDescription for pgbench_accounts(aid int4, bid int4, abalance int4, filler char(84)).
fn row_description() -> Vec<u8> {
    let columns: [(&str, u32, i16, i32); 4] =
        [("aid", 23, 4, -1), ("bid", 23, 4, -1), ("abalance", 23, 4, -1), ("filler", 1042, -1, 88)];
    let mut body = Vec::new();
    body.extend_from_slice(&(columns.len() as i16).to_be_bytes());
    for (attnum, (name, type_oid, type_len, typmod)) in columns.into_iter().enumerate() {
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(&16_397u32.to_be_bytes()); // table oid
        body.extend_from_slice(&(attnum as i16 + 1).to_be_bytes());
        body.extend_from_slice(&type_oid.to_be_bytes());
        body.extend_from_slice(&type_len.to_be_bytes());
        body.extend_from_slice(&typmod.to_be_bytes());
        body.extend_from_slice(&0i16.to_be_bytes()); // text format
    }
    body
}

/// A text-format DataRow of pgbench_accounts: about 110 bytes on the wire.
fn data_row(aid: usize) -> Vec<u8> {
    let aid = (100_000 + aid).to_string();
    let filler = [b' '; 84];
    let values: [&[u8]; 4] = [aid.as_bytes(), b"1", b"0", &filler];
    let mut body = Vec::new();
    body.extend_from_slice(&(values.len() as i16).to_be_bytes());
    for v in values {
        body.extend_from_slice(&(v.len() as i32).to_be_bytes());
        body.extend_from_slice(v);
    }
    body
}

/// One query's worth of server output: RowDescription, DataRows, CommandComplete, ReadyForQuery.
fn server_output() -> BytesMut {
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    put_msg(&mut buf, b'T', &row_description());
    for i in 0..ROWS {
        put_msg(&mut buf, b'D', &data_row(i));
    }
    put_msg(&mut buf, b'C', format!("SELECT {ROWS}\0").as_bytes());
    put_msg(&mut buf, b'Z', b"I");
    assert!(buf.len() <= READ_BUFFER, "server output of {} bytes overflows the read buffer", buf.len());
    buf
}

/// A pgbench `-S -M extended` request, its parameter untyped.
fn client_request() -> BytesMut {
    wire::pgbench_select(0)
}

/// A fresh copy of `template` in a buffer of at least `capacity` bytes, as a read would leave it.
fn refill(template: &[u8], capacity: usize) -> BytesMut {
    let mut buf = BytesMut::with_capacity(capacity.max(template.len()));
    buf.extend_from_slice(template);
    buf
}

fn server_framing(c: &mut Criterion) {
    let template = server_output().freeze();
    let mut group = c.benchmark_group("server_output");
    group.throughput(Throughput::Bytes(template.len() as u64));

    group.bench_function(format!("split_batch/{}B", template.len()), |b| {
        b.iter_batched(
            || refill(&template, READ_BUFFER),
            |mut buf| {
                // As the proxy does: stop after the ReadyForQuery that settles the last request.
                let mut status = 0u8;
                let (batch, scan) = split_batch(&mut buf, MAX_MESSAGE, |tag, msg| {
                    if tag == b'Z' {
                        status = msg[5];
                        return false;
                    }
                    true
                })
                .unwrap();
                debug_assert!(scan.stopped && buf.is_empty());
                (batch, black_box(status), buf)
            },
            BatchSize::SmallInput,
        )
    });

    group.bench_function(format!("split_frame/{}B", template.len()), |b| {
        b.iter_batched(
            || refill(&template, READ_BUFFER),
            |mut buf| {
                let mut frames = 0usize;
                while let Some(frame) = split_frame(&mut buf, MAX_MESSAGE).unwrap() {
                    black_box(&frame);
                    frames += 1;
                }
                debug_assert_eq!(frames, ROWS + 3);
                (frames, buf)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn client_requests(c: &mut Criterion) {
    let template = client_request().freeze();
    let mut group = c.benchmark_group("client_request");
    group.throughput(Throughput::Bytes(template.len() as u64));
    group.bench_function(format!("take_extended/{}B", template.len()), |b| {
        b.iter_batched(
            || refill(&template, 8 * 1024),
            |mut buf| {
                let taken = request::take(&mut buf, 64 << 20, true).unwrap();
                debug_assert!(matches!(&taken, Taken::Batch(batch) if batch.summary.readies == 1));
                (taken, buf)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, server_framing, client_requests);
criterion_main!(benches);
