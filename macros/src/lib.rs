//! The `#[wq::main]` and `#[wq::test]` attributes of the wq async runtime.
//!
//! These macros are re-exported by the `wq` crate and are meant to be used
//! through it, as `#[wq::main]` and `#[wq::test]`; see their documentation
//! there.
//!
//! The examples below are not compiled as part of this crate's tests, since
//! they need the `wq` crate itself, which depends on this one.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod errors;
mod expand;

use proc_macro::TokenStream;

use expand::Kind;

/// Runs an `async fn main` on a wq runtime.
///
/// The function is turned into an ordinary synchronous function that builds a
/// runtime and blocks on the original body until it completes:
///
/// ```ignore
/// #[wq::main]
/// async fn main() {
///     let answer = wq::spawn(async { 40 + 2 }).await.unwrap();
///     println!("{answer}");
/// }
/// ```
///
/// becomes
///
/// ```ignore
/// fn main() {
///     ::wq::Builder::new()
///         .build()
///         .expect("failed to build the wq runtime")
///         .block_on(async move {
///             let answer = wq::spawn(async { 40 + 2 }).await.unwrap();
///             println!("{answer}");
///         })
/// }
/// ```
///
/// The function keeps its attributes, visibility and return type, so `main`
/// can return a `Result`, and `return` and `?` in the body work as they would
/// in any `async` block:
///
/// ```ignore
/// use std::error::Error;
///
/// #[wq::main(workers = 4)]
/// async fn main() -> Result<(), Box<dyn Error>> {
///     let config = std::fs::read_to_string("app.toml")?;
///     if config.is_empty() {
///         return Err("app.toml is empty".into());
///     }
///     Ok(())
/// }
/// ```
///
/// The attribute may also be put on an `async fn` with another name, which
/// then runs its own runtime each time it is called.
///
/// # Options
///
/// - `flavor = "multi_thread"` (the default for `main`) or
///   `"current_thread"` (the default for `#[wq::test]`, as in tokio): the
///   runtime is built with `wq::Builder::new()` or
///   `wq::Builder::new_current_thread()`.
/// - `workers = N` (or tokio's `worker_threads = N`): the number of worker
///   threads, an integer literal of at least 1; implies `multi_thread`.
///   Without it the runtime picks its default.
/// - `start_paused = true`: the runtime's clock starts paused.
/// - `crate = "path"`: the path under which the `wq` crate is reachable, for
///   code that renamed or re-exported it. Defaults to `::wq`.
///
/// ```ignore
/// extern crate wq as runtime;
///
/// #[runtime::main(workers = 2, crate = "runtime")]
/// async fn main() {}
/// ```
///
/// # Errors
///
/// The attribute reports a compile error, pointing at the offending code, when
/// the function is not `async`, when the function named `main` takes
/// arguments, or when an option is unknown, repeated or has an invalid value.
/// tokio's spellings (`flavor`, `worker_threads`, `start_paused`) are
/// accepted; tokio's `unhandled_panic` is recognised and reported as not
/// supported.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Main, args.into(), item.into()).into()
}

/// Runs an `async fn` test on a wq runtime of its own.
///
/// The function becomes a `#[test]` function that builds a runtime (a
/// current-thread one by default, as tokio's) and blocks on the original
/// body, as [`macro@main`] does for `main`:
///
/// ```ignore
/// #[wq::test]
/// async fn spawned_tasks_complete() {
///     assert_eq!(wq::spawn(async { 40 + 2 }).await.unwrap(), 42);
/// }
/// ```
///
/// becomes
///
/// ```ignore
/// #[::core::prelude::v1::test]
/// fn spawned_tasks_complete() {
///     ::wq::Builder::new_current_thread()
///         .build()
///         .expect("failed to build the wq runtime")
///         .block_on(async move {
///             assert_eq!(wq::spawn(async { 40 + 2 }).await.unwrap(), 42);
///         })
/// }
/// ```
///
/// Tests may return a `Result`, and other test attributes such as
/// `#[should_panic]` or `#[ignore]` can be written after this one:
///
/// ```ignore
/// #[wq::test(workers = 2)]
/// #[ignore = "slow"]
/// async fn answers() -> Result<(), String> {
///     let answer = wq::spawn(async { 42 }).await.map_err(|e| e.to_string())?;
///     if answer == 42 { Ok(()) } else { Err(format!("got {answer}")) }
/// }
/// ```
///
/// # Options
///
/// The same as for [`macro@main`], but the runtime is a current-thread one
/// unless `flavor = "multi_thread"` or `workers = N` says otherwise, as
/// with `#[tokio::test]`.
///
/// # Errors
///
/// Besides the errors described for [`macro@main`], the attribute rejects a
/// function that already carries `#[test]`, since it would be registered as a
/// test twice.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Test, args.into(), item.into()).into()
}
