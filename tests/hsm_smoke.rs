//! Quick end-to-end check that the fixture and binary work together.
mod common;

use common::{stdout_of, ModuleKind, TestToken};

#[test]
fn list_slots_shows_the_test_token() {
    for kind in ModuleKind::enabled() {
        let t = TestToken::with_kind(kind, "smoke-token");
        let a = t.cmd().arg("list-slots").assert().success();
        let out = stdout_of(&a);
        assert!(
            out.contains("label:           smoke-token"),
            "{}: {out}",
            kind.name()
        );
        assert!(out.contains("initialized:     yes"), "{out}");
    }
}
