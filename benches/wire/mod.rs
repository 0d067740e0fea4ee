//! Protocol bytes the benches feed pgsplit: built here once, so every bench measures the same
//! request.

use bytes::{BufMut, BytesMut};

/// pgbench's select-only statement.
pub const PGBENCH_SELECT: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";

/// Appends one message: tag, length (counting itself), body.
pub fn put_msg(buf: &mut BytesMut, tag: u8, body: &[u8]) {
    buf.put_u8(tag);
    buf.put_u32((body.len() + 4) as u32);
    buf.put_slice(body);
}

/// pgbench `-S -M extended` as libpq's PQsendQueryParams sends it: Parse (unnamed statement, one
/// parameter of type `param_type`, 0 for untyped), Bind (unnamed portal, the parameter in text,
/// one text result column), Describe portal, Execute, Sync.
pub fn pgbench_select(param_type: u32) -> BytesMut {
    let mut buf = BytesMut::new();
    let mut parse = vec![0];
    parse.extend_from_slice(PGBENCH_SELECT.as_bytes());
    parse.push(0);
    parse.extend_from_slice(&1i16.to_be_bytes());
    parse.extend_from_slice(&param_type.to_be_bytes());
    put_msg(&mut buf, b'P', &parse);

    let mut bind = b"\0\0".to_vec(); // unnamed portal, unnamed statement
    bind.extend_from_slice(&0i16.to_be_bytes()); // parameter formats: all text
    bind.extend_from_slice(&1i16.to_be_bytes());
    let aid = b"734519";
    bind.extend_from_slice(&(aid.len() as i32).to_be_bytes());
    bind.extend_from_slice(aid);
    bind.extend_from_slice(&1i16.to_be_bytes()); // result formats: one, text
    bind.extend_from_slice(&0i16.to_be_bytes());
    put_msg(&mut buf, b'B', &bind);

    put_msg(&mut buf, b'D', b"P\0");
    put_msg(&mut buf, b'E', b"\0\0\0\0\0");
    put_msg(&mut buf, b'S', b"");
    buf
}
