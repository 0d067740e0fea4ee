//! Input generators: seeds changed by a few mutations each (as a coverage-guided fuzzer's havoc
//! stage does, minus the coverage), random bytes, random well-framed messages and random SQL token
//! soup. Mutations are values, so proptest shrinks a failure to the fewest mutations that cause it.

use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use crate::protocol::frame::whole_messages;

/// One change to a byte string. Positions are taken modulo the length at the time it applies.
#[derive(Clone, Debug)]
pub(crate) enum Mutation {
    FlipBit {
        at: usize,
        bit: u8,
    },
    SetByte {
        at: usize,
        value: u8,
    },
    Truncate {
        at: usize,
    },
    Remove {
        at: usize,
        len: u8,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    /// Repeats a run of bytes in place (a message sent twice, a field doubled).
    Duplicate {
        at: usize,
        len: u16,
    },
    /// Puts a run of another seed here: messages of one client inside another's stream.
    Splice {
        seed: usize,
        from: usize,
        len: u16,
        at: usize,
    },
    /// Overwrites the length field of the nth message (of a startup packet when none is framed).
    Length {
        nth: usize,
        value: LengthValue,
    },
}

/// What a corrupted length field says.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LengthValue {
    /// 0, 3, 4, 5, 2^31 - 1, 2^31, 2^31 + 1, 2^32 - 1, 10000, 10001 (the startup limit).
    Edge(u8),
    /// The true length, off by this much.
    Off(i8),
    Any(u32),
}

const EDGES: [u32; 10] = [0, 3, 4, 5, 0x7fff_ffff, 0x8000_0000, 0x8000_0001, u32::MAX, 10_000, 10_001];

fn mutation() -> impl Strategy<Value = Mutation> {
    let length = prop_oneof![
        (0..EDGES.len() as u8).prop_map(LengthValue::Edge),
        any::<i8>().prop_map(LengthValue::Off),
        any::<u32>().prop_map(LengthValue::Any),
    ];
    prop_oneof![
        3 => (any::<usize>(), 0..8u8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::SetByte { at, value }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, len)| Mutation::Remove { at, len }),
        1 => (any::<usize>(), vec(any::<u8>(), 1..16)).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (any::<usize>(), any::<u16>()).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
        1 => (any::<usize>(), any::<usize>(), any::<u16>(), any::<usize>())
            .prop_map(|(seed, from, len, at)| Mutation::Splice { seed, from, len, at }),
        2 => (any::<usize>(), length).prop_map(|(nth, value)| Mutation::Length { nth, value }),
    ]
}

/// Applies `mutations` to `bytes` in order; `seeds` are what splices take from.
pub(crate) fn apply(mut bytes: Vec<u8>, mutations: &[Mutation], seeds: &[Vec<u8>]) -> Vec<u8> {
    for m in mutations {
        let n = bytes.len();
        let at = |i: usize| if n == 0 { 0 } else { i % n };
        match *m {
            Mutation::FlipBit { at: i, bit } if n > 0 => bytes[at(i)] ^= 1 << bit,
            Mutation::SetByte { at: i, value } if n > 0 => bytes[at(i)] = value,
            Mutation::Truncate { at: i } => bytes.truncate(at(i)),
            Mutation::Remove { at: i, len } => {
                let start = at(i);
                bytes.drain(start..(start + len as usize).min(n));
            }
            Mutation::Insert { at: i, bytes: ref extra } => {
                let start = at(i);
                bytes.splice(start..start, extra.iter().copied());
            }
            Mutation::Duplicate { at: i, len } => {
                let start = at(i);
                let run = bytes[start..(start + len as usize).min(n)].to_vec();
                bytes.splice(start..start, run);
            }
            Mutation::Splice { seed, from, len, at: i } if !seeds.is_empty() => {
                let other = &seeds[seed % seeds.len()];
                let from = if other.is_empty() { 0 } else { from % other.len() };
                let run = &other[from..(from + len as usize).min(other.len())];
                let start = at(i);
                bytes.splice(start..start, run.iter().copied());
            }
            Mutation::Length { nth, value } => corrupt_length(&mut bytes, nth, value),
            _ => {}
        }
    }
    bytes
}

/// Overwrites a length field: of the nth tagged message, or at offset 0 when none parses.
fn corrupt_length(bytes: &mut [u8], nth: usize, value: LengthValue) {
    let mut offsets = Vec::new();
    let mut offset = 0;
    for message in whole_messages(bytes) {
        offsets.push(offset + 1);
        offset += message.len();
    }
    let at = if offsets.is_empty() { 0 } else { offsets[nth % offsets.len()] };
    let Some(field) = bytes.get_mut(at..at + 4) else { return };
    let current = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
    let new = match value {
        LengthValue::Edge(i) => EDGES[i as usize % EDGES.len()],
        LengthValue::Off(d) => current.wrapping_add_signed(d.into()),
        LengthValue::Any(v) => v,
    };
    field.copy_from_slice(&new.to_be_bytes());
}

/// A seed with up to `max_mutations` mutations applied.
pub(crate) fn mutated(seeds: Vec<Vec<u8>>, max_mutations: usize) -> impl Strategy<Value = Vec<u8>> {
    let seeds = Arc::new(seeds);
    let pick = 0..seeds.len();
    (pick, vec(mutation(), 0..=max_mutations)).prop_map(move |(i, ms)| apply(seeds[i].clone(), &ms, &seeds))
}

/// Mutations alone, for inputs that only exist at run time (a live SCRAM exchange's messages).
pub(crate) fn mutations(max: usize) -> impl Strategy<Value = Vec<Mutation>> {
    vec(mutation(), 0..=max)
}

/// Tags clients send, and anything else.
fn tag() -> impl Strategy<Value = u8> {
    prop_oneof![3 => select(b"QPBDECSHFXdcfp".to_vec()), 1 => any::<u8>()]
}

/// Well-framed messages with random tags and bodies: past the framing, into the decoders.
pub(crate) fn framed() -> impl Strategy<Value = Vec<u8>> {
    vec((tag(), vec(any::<u8>(), 0..48)), 0..10).prop_map(|messages| {
        let mut out = Vec::new();
        for (tag, body) in messages {
            out.push(tag);
            out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
            out.extend_from_slice(&body);
        }
        out
    })
}

/// Mutated seeds most of the time, random framed messages and raw random bytes otherwise.
pub(crate) fn wire(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![6 => mutated(seeds, 6), 2 => framed(), 1 => vec(any::<u8>(), 0..512)]
}

/// SQL pieces that change how text is tokenized and split.
const SQL_TOKENS: &[&str] = &[
    "select",
    "SELECT",
    "insert",
    "into",
    "update",
    "delete",
    "with",
    "as",
    "from",
    "where",
    "for",
    "update",
    "share",
    "no",
    "key",
    "begin",
    "end",
    "commit",
    "rollback",
    "set",
    "local",
    "to",
    "default",
    "create",
    "function",
    "atomic",
    "explain",
    "analyze",
    "copy",
    "stdout",
    "values",
    "table",
    "listen",
    "prepare",
    "declare",
    "cursor",
    "hold",
    "(",
    ")",
    "[",
    "]",
    ",",
    ";",
    "::",
    ".",
    "*",
    "=",
    "<@",
    "'",
    "''",
    "\"",
    "E'",
    "\\",
    "$$",
    "$a$",
    "$1",
    "U&'",
    "/*",
    "*/",
    "--",
    "\n",
    " ",
    "\t",
    "pgsplit:",
    "route=replica",
    "route=primary",
    "min_lsn=",
    "0/16B3748",
    "FFFFFFFF/FFFFFFFF",
    "1e10",
    "0x1f",
    "nextval",
    "pg_advisory_lock",
    "é",
    "\u{0}",
    "t",
    "\"T\"",
    "public.t",
];

/// SQL: mutated real statements, token soup, or any string.
pub(crate) fn sql() -> impl Strategy<Value = String> {
    let seeds = super::seeds::sql_texts();
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    prop_oneof![
        4 => mutated(seeds, 4).prop_map(text),
        4 => vec(select(SQL_TOKENS), 0..48).prop_map(|t| t.concat()),
        1 => any::<String>(),
    ]
}
