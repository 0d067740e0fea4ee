use super::*;

fn feed(e: &mut Expectations, tags: &[u8]) -> Vec<Step> {
    tags.iter().map(|&t| e.on_reply(t)).collect()
}

#[test]
fn extended_pipeline_settles_at_sync() {
    let mut e = Expectations::default();
    for (tag, body) in [(b'P', &b""[..]), (b'B', b""), (b'D', b"P"), (b'E', b""), (b'S', b"")] {
        e.push_client(tag, body);
    }
    let steps = feed(&mut e, b"12TDDDCZ");
    assert!(steps.iter().all(|s| s.forward));
    assert_eq!(steps.iter().filter(|s| s.ready).count(), 1);
    assert!(steps.last().unwrap().ready);
    assert!(e.is_empty());
}

#[test]
fn describe_statement_needs_both_replies() {
    let mut e = Expectations::default();
    e.push_client(b'D', b"Sname\0");
    e.push_client(b'S', b"");
    e.on_reply(b't');
    assert!(!e.is_empty());
    e.on_reply(b'n');
    assert!(!e.probe_next());
    assert!(e.on_reply(b'Z').ready);
    assert!(e.is_empty());
}

#[test]
fn injected_parse_is_swallowed_and_records_the_statement() {
    let mut e = Expectations::default();
    e.push(Kind::Parse, Fate::Swallow, Some(7));
    e.push_client(b'B', b"");
    e.push_client(b'E', b"");
    e.push_client(b'S', b"");
    assert_eq!(e.front_fate(), &Fate::Swallow);
    let parse = e.on_reply(b'1');
    assert!(!parse.forward);
    assert_eq!(parse.unprepared, None, "the statement stays recorded as prepared");
    assert!(feed(&mut e, b"2DCZ").iter().all(|s| s.forward));
}

#[test]
fn error_skips_to_sync_and_drops_pending_synths() {
    let mut e = Expectations::default();
    e.push_client(b'B', b"");
    e.push(Kind::Parse, Fate::Answer(Bytes::from_static(PARSE_COMPLETE)), None);
    e.push_client(b'E', b"");
    e.push_client(b'S', b"");
    let err = e.on_reply(b'E');
    assert!(err.forward);
    assert_eq!(e.take_answer(), None, "the server skipped past the dropped Parse's turn");
    assert!(e.on_reply(b'Z').ready);
    assert!(e.is_empty());
}

#[test]
fn injected_parse_error_reaches_the_client() {
    let mut e = Expectations::default();
    e.push(Kind::Parse, Fate::Swallow, Some(1));
    e.push_client(b'B', b"");
    e.push_client(b'S', b"");
    let err = e.on_reply(b'E');
    assert!(err.forward);
    assert_eq!(err.unprepared, Some(1));
    assert!(e.on_reply(b'Z').ready);
}

#[test]
fn synth_replies_come_out_in_order() {
    let mut e = Expectations::default();
    e.push_client(b'B', b"");
    e.push(Kind::Close, Fate::Answer(Bytes::from_static(CLOSE_COMPLETE)), None);
    e.push_client(b'S', b"");
    assert_eq!(e.take_answer(), None, "the Bind's reply comes first");
    e.on_reply(b'2');
    assert_eq!(e.take_answer().as_deref(), Some(CLOSE_COMPLETE));
    assert!(e.on_reply(b'Z').ready);
}

#[test]
fn simple_query_with_errors_and_copy_out() {
    let mut e = Expectations::default();
    e.push_client(b'Q', b"");
    let steps = feed(&mut e, b"TDCEHddcCZ");
    assert!(steps.iter().all(|s| s.forward));
    assert!(steps.last().unwrap().ready && e.is_empty());
}

#[test]
fn probe_is_swallowed_whole() {
    let mut e = Expectations::default();
    e.push_client(b'Q', b"");
    e.push(Kind::Probe, Fate::Swallow, None);
    assert!(e.on_reply(b'C').forward);
    assert!(e.on_reply(b'Z').ready);
    assert!(e.probe_next());
    let steps = feed(&mut e, b"TDCZ");
    assert!(steps.iter().all(|s| !s.forward));
    assert!(steps.last().unwrap().probe_done);
    assert!(e.is_empty());
}

#[test]
fn async_messages_are_forwarded_without_touching_the_queue() {
    let mut e = Expectations::default();
    e.push(Kind::Probe, Fate::Swallow, None);
    for tag in [b'N', b'A', b'S'] {
        assert!(e.on_reply(tag).forward);
    }
    assert!(e.probe_next());
}

#[test]
fn sync_sent_with_a_copy_in_execute_is_ignored_by_the_server() {
    let mut e = Expectations::default();
    for tag in *b"BES" {
        e.push_client(tag, b"");
    }
    assert!(e.on_reply(b'2').forward);
    e.on_reply(b'G');
    // CopyData… CopyDone, then the driver's Sync after it.
    e.push_client(b'S', b"");
    assert!(!e.on_reply(b'C').ready);
    assert!(e.on_reply(b'Z').ready);
    assert!(e.is_empty());
}

#[test]
fn copy_in_waits_for_the_client_until_it_ends() {
    for end in [b'C', b'E'] {
        let mut e = Expectations::default();
        e.push_client(b'Q', b"");
        assert!(!e.copy_in());
        e.on_reply(b'G');
        assert!(e.copy_in(), "the server waits for CopyData");
        e.on_reply(end);
        assert!(!e.copy_in());
        assert!(e.on_reply(b'Z').ready && e.is_empty());
    }
    let mut e = Expectations::default();
    e.push_client(b'Q', b"");
    feed(&mut e, b"Hdd");
    assert!(!e.copy_in(), "COPY TO STDOUT needs nothing from the client");
}

/// A plain COMMIT with the probe folded into its Query.
fn folded() -> Expectations {
    let mut e = Expectations::default();
    e.push(Kind::FoldedCommit, Fate::Forward, None);
    e.push(Kind::FoldedProbe { commit_failed: false, answered: false }, Fate::Swallow, None);
    e
}

#[test]
fn a_folded_probe_swallows_its_rows_and_passes_the_ready_on() {
    let mut e = folded();
    let commit = e.on_reply(b'C');
    assert!(commit.forward && !commit.ready);
    assert!(e.probe_next(), "after the COMMIT's CommandComplete only the probe is owed");
    let notice = e.on_reply(b'N');
    assert!(notice.forward, "a notice is the client's, wherever it comes");
    assert!(feed(&mut e, b"TDC").iter().all(|s| !s.forward), "the probe's rows are pgsplit's");
    let ready = e.on_reply(b'Z');
    assert!(ready.forward && ready.ready && !ready.probe_done);
    assert!(e.probe_next(), "the probe ends after its ReadyForQuery went out as the client's");
    assert_eq!(e.take_folded_probe(), Some(false));
    assert!(e.is_empty());
    assert_eq!(e.take_folded_probe(), None);
}

#[test]
fn a_failed_folded_commit_ends_the_probe_with_its_ready() {
    let mut e = folded();
    assert_eq!(e.take_folded_probe(), None, "nothing arrived yet");
    let error = e.on_reply(b'E');
    assert!(error.forward, "the commit's error is the client's");
    let ready = e.on_reply(b'Z');
    assert!(ready.forward && ready.ready);
    assert_eq!(e.take_folded_probe(), Some(true), "the server rolled back and skipped the probe");
    assert!(e.is_empty());
}

#[test]
fn a_failed_folded_probe_is_swallowed() {
    let mut e = folded();
    e.on_reply(b'C');
    let error = e.on_reply(b'E');
    assert!(!error.forward, "the probe's own error is pgsplit's");
    assert!(e.on_reply(b'Z').forward);
    assert_eq!(e.take_folded_probe(), Some(false), "the commit succeeded; the LSN is unknown");
}
