//! Builder validation: bad values are errors naming the field, never panics.

use std::io::ErrorKind;
use std::time::Duration;

fn error_of(builder: wq::Builder) -> String {
    let err = builder.build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    err.to_string()
}

#[test]
fn zero_workers_is_an_error() {
    let msg = error_of(wq::Builder::new().workers(0));
    assert_eq!(
        msg,
        "invalid wq::Builder setting `workers`: must be at least 1, got 0"
    );
}

#[test]
fn max_workers_below_workers_is_an_error() {
    let msg = error_of(wq::Builder::new().workers(4).max_workers(2));
    assert_eq!(
        msg,
        "invalid wq::Builder setting `max_workers`: must be at least `workers` (4), got 2"
    );
}

#[test]
fn empty_thread_name_is_an_error() {
    let msg = error_of(wq::Builder::new().thread_name(""));
    assert_eq!(
        msg,
        "invalid wq::Builder setting `thread_name`: must not be empty"
    );
}

/// The name function runs as each worker thread is created: a name with a
/// NUL byte (which std's thread builder panics on), or a panic in the
/// function, fails the creation with an error naming the setting. At
/// `build` (which creates the first workers) that error is returned.
#[test]
fn thread_name_fn_with_a_nul_byte_or_a_panic_is_an_error() {
    let msg = error_of(wq::Builder::new().thread_name_fn(|| "a\0b".to_owned()));
    assert_eq!(
        msg,
        "invalid wq::Builder setting `thread_name_fn`: it returned \"a\\0b\", which contains a NUL byte"
    );
    let msg = error_of(wq::Builder::new().thread_name_fn(|| panic!("no name today")));
    assert_eq!(
        msg,
        "invalid wq::Builder setting `thread_name_fn`: the function panicked"
    );
}

/// An idle worker wakes every `idle_timeout` to see whether it may exit:
/// below 1 ms the idle workers would spin.
#[test]
fn a_zero_or_tiny_idle_timeout_is_an_error() {
    let msg = error_of(wq::Builder::new().idle_timeout(Duration::ZERO));
    assert_eq!(
        msg,
        "invalid wq::Builder setting `idle_timeout`: must be at least 1ms, got 0ns"
    );
    let msg = error_of(wq::Builder::new().idle_timeout(Duration::from_nanos(1)));
    assert_eq!(
        msg,
        "invalid wq::Builder setting `idle_timeout`: must be at least 1ms, got 1ns"
    );
}

/// A stack the worker's own frames overflow (std rounds a tiny size up to
/// 16 KiB) is refused at `build`, not found by a stack overflow.
#[test]
fn a_zero_or_tiny_stack_size_is_an_error() {
    for size in [0, 1, 16 * 1024] {
        let msg = error_of(wq::Builder::new().thread_stack_size(size));
        assert_eq!(
            msg,
            format!(
                "invalid wq::Builder setting `thread_stack_size`: must be at least 64 KiB \
                 (a worker's own frames need about half of that), got {size} bytes"
            )
        );
    }
    let rt = wq::Builder::new()
        .workers(1)
        .thread_stack_size(64 * 1024)
        .build()
        .unwrap();
    assert_eq!(rt.block_on(rt.spawn(async { 1 + 1 })).unwrap(), 2);
}

#[test]
fn valid_settings_build_a_working_runtime() {
    let rt = wq::Builder::new()
        .workers(3)
        .max_workers(3)
        .idle_timeout(Duration::from_secs(1))
        .thread_stack_size(256 * 1024)
        .build()
        .unwrap();
    assert_eq!(rt.handle().metrics().num_workers(), 3);
    assert_eq!(rt.block_on(rt.spawn(async { 2 + 2 })).unwrap(), 4);
}

#[test]
fn default_runtime_builds() {
    let rt = wq::Runtime::new().unwrap();
    let parallelism = std::thread::available_parallelism().unwrap().get();
    assert_eq!(
        rt.handle().metrics().num_workers(),
        parallelism.min(wq::DEFAULT_MAX_WORKERS)
    );
}
