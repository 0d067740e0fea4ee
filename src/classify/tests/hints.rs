use super::classify;
use crate::classify::{format_lsn, parse_lsn, Hints, RouteTarget};

fn hints(sql: &str) -> Hints {
    classify(sql).hints
}

#[test]
fn route_hints_in_block_and_line_comments() {
    assert_eq!(hints("/* pgsplit: route=primary */ SELECT 1").route, Some(RouteTarget::Primary));
    assert_eq!(hints("SELECT 1 -- pgsplit: route=replica").route, Some(RouteTarget::Replica));
    assert_eq!(hints("SELECT /* PGSPLIT: Route=Any */ 1").route, Some(RouteTarget::Any));
    assert_eq!(hints("SELECT 1 /*pgsplit:route=replica*/").route, Some(RouteTarget::Replica));
    assert_eq!(hints("/* app=web pgsplit: route='replica' */ SELECT 1").route, Some(RouteTarget::Replica));
}

#[test]
fn min_lsn_hint() {
    let h = hints("/* pgsplit: min_lsn=16/B374D848 */ SELECT 1");
    assert_eq!(h, Hints { route: None, min_lsn: Some(0x16_B374_D848) });
    let h = hints("/* pgsplit: route=replica, min_lsn='0/1' */ SELECT 1");
    assert_eq!(h, Hints { route: Some(RouteTarget::Replica), min_lsn: Some(1) });
}

#[test]
fn the_strictest_hint_wins() {
    let h = hints("/* pgsplit: route=replica */ SELECT 1 /* pgsplit: route=primary */");
    assert_eq!(h.route, Some(RouteTarget::Primary));
    let h = hints("/* pgsplit: route=primary */ SELECT 1 /* pgsplit: route=any */");
    assert_eq!(h.route, Some(RouteTarget::Primary));
    let h = hints("/* pgsplit: route=any */ SELECT 1 /* pgsplit: route=replica */");
    assert_eq!(h.route, Some(RouteTarget::Any));
    let h = hints("/* pgsplit: min_lsn=0/FF */ SELECT 1; -- pgsplit: min_lsn=1/0\nSELECT 2");
    assert_eq!(h.min_lsn, Some(1 << 32));
}

#[test]
fn text_that_is_no_hint_is_ignored() {
    assert_eq!(hints("SELECT '/* pgsplit: route=primary */'"), Hints::default());
    assert_eq!(hints("/* route=primary */ SELECT 1"), Hints::default());
    assert_eq!(hints("/* pgsplit: route=sideways min_lsn=zz/1 */ SELECT 1"), Hints::default());
    assert_eq!(hints("SELECT 1"), Hints::default());
}

#[test]
fn hints_do_not_change_intent() {
    let c = classify("/* pgsplit: route=replica */ DELETE FROM t");
    assert!(c.writes);
    assert_eq!(c.hints.route, Some(RouteTarget::Replica));
}

#[test]
fn lsn_text_round_trips() {
    assert_eq!(parse_lsn("0/0"), Some(0));
    assert_eq!(parse_lsn("0/1"), Some(1));
    assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
    assert_eq!(parse_lsn("16/b374d848"), Some(0x16_B374_D848));
    assert_eq!(parse_lsn(" 1/2 "), Some((1 << 32) | 2));
    assert_eq!(parse_lsn("FFFFFFFF/FFFFFFFF"), Some(u64::MAX));
    for bad in ["", "16", "/1", "1/", "G/1", "1/2/3", "123456789/0", "-1/0", "+1/0", "1 /0"] {
        assert_eq!(parse_lsn(bad), None, "{bad:?}");
    }
    assert_eq!(format_lsn(0), "0/0");
    assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
    for lsn in [0, 1, 0xFFFF_FFFF, 1 << 32, 0x16_B374_D848, u64::MAX] {
        assert_eq!(parse_lsn(&format_lsn(lsn)), Some(lsn));
    }
}
