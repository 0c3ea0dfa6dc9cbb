//! Compile-time behaviour of `#[wq::main]` and `#[wq::test]`: the cases in
//! `tests/ui/pass` must build and run, and each case in `tests/ui/fail` must
//! be rejected with exactly the errors recorded next to it.

// Building the cases needs a full compiler, which neither loom's model
// checking nor miri's interpreter provide.
#![cfg(not(loom))]

#[test]
#[cfg_attr(miri, ignore)]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
